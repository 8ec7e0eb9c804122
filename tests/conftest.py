"""Suite-wide setup that must happen before any test starts JAX's backend.

XLA compiles at optimization level 0 for the whole run (compiling the many small programs
of the tests is then several times faster), unless the caller set XLA_FLAGS. The level
changes the last bit of JAX's native float32 values (where multiply-adds are fused), so
the suite fixes it once here rather than depending on which test module is imported first;
tests/golden.py writes its fixture under the same flags.
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")
