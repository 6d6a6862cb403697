"""What every domain's tasks share, not a domain of its own: task options (retries, no cache), who a run acts
for (identity), the organizations a scheduled flow works through."""
