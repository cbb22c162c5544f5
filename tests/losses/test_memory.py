import numpy as np

import tfkd  # noqa: F401
from tfkd.losses._memory import MemoryBank


def test_memory_bank_config_rebuilds_the_same_initial_rows():
    bank = MemoryBank(num_rows=6, dim=4, seed=3, name="bank")
    again = MemoryBank.from_config(bank.get_config())
    assert (again.num_rows, again.dim, again.seed, again.name) == (6, 4, 3, "bank")
    np.testing.assert_array_equal(again.rows.numpy(), bank.rows.numpy())
    assert again.rows.dtype == "float32"
