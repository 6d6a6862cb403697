"""The demo: sample data, the seed and `mlops demo`. Not part of the runtime the flows use."""
