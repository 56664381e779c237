//! Test bed for unitgate.
