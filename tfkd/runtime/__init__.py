"""Where and how a run computes: tf.distribute strategies and mixed precision."""
