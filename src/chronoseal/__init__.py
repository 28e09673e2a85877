"""chronoseal."""

# Imported first so it records the interpreter's recursion limit before any chain library
# raises it (see chronoseal._decode).
from chronoseal import _decode as _decode
