// Can this ever change?
pub const CHALLENGE_SIZE_BYTES: usize = 32;
