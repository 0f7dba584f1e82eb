"""Native (C++) kernels with run-time ISA dispatch; empty until the extension is built."""
