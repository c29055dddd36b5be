//! Time and randomness, passed in so that tests pin the clock and reproduce keys.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use contrast_attest::UnixTime;
use rand_core::{CryptoRng, RngCore};

/// The time certificates are issued at.
pub trait Clock: fmt::Debug + Send + Sync {
    /// Now.
    fn now(&self) -> UnixTime;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        UnixTime::from_secs(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        )
    }
}

/// A cryptographically secure source of random bytes, shared by every request: seeds, salts,
/// mesh CA keys, certificate serials and signatures draw from it.
pub trait Entropy: fmt::Debug + Send + Sync {
    /// Fills `dest` with random bytes.
    fn fill(&self, dest: &mut [u8]);
}

/// The operating system's generator (`getrandom`).
#[derive(Debug, Clone, Copy, Default)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&self, dest: &mut [u8]) {
        rand_core::OsRng.fill_bytes(dest);
    }
}

/// An [`Entropy`] as the `rand_core` generator the libraries take.
pub(crate) struct Rng<'a>(pub(crate) &'a dyn Entropy);

impl RngCore for Rng<'_> {
    fn next_u32(&mut self) -> u32 {
        let mut bytes = [0; 4];
        self.0.fill(&mut bytes);
        u32::from_le_bytes(bytes)
    }

    fn next_u64(&mut self) -> u64 {
        let mut bytes = [0; 8];
        self.0.fill(&mut bytes);
        u64::from_le_bytes(bytes)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill(dest);
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.0.fill(dest);
        Ok(())
    }
}

// An `Entropy` promises cryptographic randomness.
impl CryptoRng for Rng<'_> {}
