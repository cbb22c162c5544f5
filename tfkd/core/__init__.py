"""The bottom layer: errors, the generic registry, JSON files and the network probe; nothing here imports TensorFlow."""
