"""The bottom layer: errors, the generic registry, JSON files, directory targets and the network probe; nothing here imports TensorFlow."""
