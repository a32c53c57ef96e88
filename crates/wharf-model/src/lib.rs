//! The model artifact format and its forward pass (owned by the trainer issue).
