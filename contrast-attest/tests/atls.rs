//! aTLS tests.
