//! The device side of the MEF procedures over a MEF session.
