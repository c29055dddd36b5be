//! The simulated SEV-SNP environment, kept in a directory so that separate processes (a
//! Coordinator, its initializers, the CLI) share one simulated AMD platform and one launch
//! configuration.
//!
//! Layout of the directory:
//!
//! - `platform/`: the simulated AMD hierarchy ([`SimulatedPlatform::save`]): ARK and ASK
//!   certificates and private keys, and the VCEK seed. These are the simulated "hardware"
//!   secrets; whoever reads them can forge simulated reports, which is why a simulated ARK is
//!   trusted only where a manifest pins its fingerprint under the `Simulated-SNP` platform.
//! - `launch.json`: how the confidential VMs are launched ([`SimulatedLaunch`]): product,
//!   measurement, guest policy and TCB. Manifest reference values derive from it.
//!
//! Every process picks its own chip ID (by default a random one), so every simulated VM has its
//! own VCEK, as on a real cluster of machines.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use contrast_attest::atls::Issuer;
use contrast_attest::{Product, TcbVersion};
use contrast_core::manifest::{GuestPolicy, SnpReferenceValues};
use contrast_sim::SimulatedIssuer;
use contrast_sim::{SimulatedGuest, SimulatedPlatform, SimulatedPlatformFiles};
use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};

use crate::TeeError;

/// The file holding the launch configuration.
pub const LAUNCH_FILE: &str = "launch.json";
/// The subdirectory holding the simulated AMD hierarchy.
pub const PLATFORM_DIR: &str = "platform";

/// How a simulated confidential VM is launched: what its reports say about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatedLaunch {
    /// The AMD product (`Milan`, `Genoa`, `Turin`); must be the platform's.
    pub product: String,
    /// MEASUREMENT, 96 lowercase hex digits.
    pub measurement: String,
    /// The guest policy.
    pub guest_policy: SimulatedPolicy,
    /// The TCB of the simulated firmware (all four TCB fields of each report).
    pub tcb: SimulatedTcb,
}

/// The guest policy bits a simulated launch sets (the rest of the manifest's `GuestPolicy` is
/// zero).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatedPolicy {
    /// Minimum ABI major version.
    pub abi_major: u8,
    /// Minimum ABI minor version.
    pub abi_minor: u8,
    /// SMT allowed.
    pub smt: bool,
    /// Migration agent allowed.
    pub migrate_ma: bool,
    /// Debugging allowed.
    pub debug: bool,
    /// Single socket only.
    pub single_socket: bool,
}

impl From<SimulatedPolicy> for GuestPolicy {
    fn from(policy: SimulatedPolicy) -> GuestPolicy {
        GuestPolicy {
            abi_major: policy.abi_major,
            abi_minor: policy.abi_minor,
            smt: policy.smt,
            migrate_ma: policy.migrate_ma,
            debug: policy.debug,
            single_socket: policy.single_socket,
            ..GuestPolicy::default()
        }
    }
}

/// The TCB components of a simulated machine (Milan/Genoa layout).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatedTcb {
    /// Boot loader SPL.
    pub bootloader: u8,
    /// TEE SPL.
    pub tee: u8,
    /// SNP firmware SPL.
    pub snp: u8,
    /// Microcode SPL.
    pub microcode: u8,
}

impl From<SimulatedTcb> for TcbVersion {
    fn from(tcb: SimulatedTcb) -> TcbVersion {
        TcbVersion {
            fmc: None,
            bootloader: tcb.bootloader,
            tee: tcb.tee,
            snp: tcb.snp,
            microcode: tcb.microcode,
        }
    }
}

/// The TCB new environments launch with (recent Milan firmware levels).
pub const DEFAULT_TCB: SimulatedTcb = SimulatedTcb {
    bootloader: 4,
    tee: 0,
    snp: 23,
    microcode: 213,
};

/// A loaded simulated environment: the platform and the launch configuration.
#[derive(Clone)]
pub struct SimulatedEnvironment {
    dir: PathBuf,
    platform: Arc<SimulatedPlatform>,
    launch: SimulatedLaunch,
    product: Product,
    measurement: [u8; 48],
}

impl std::fmt::Debug for SimulatedEnvironment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatedEnvironment")
            .field("dir", &self.dir)
            .field("platform", &self.platform)
            .field("launch", &self.launch)
            .finish()
    }
}

impl SimulatedEnvironment {
    /// Creates a new environment in `dir` (created if missing; must not already hold one): a
    /// fresh simulated AMD hierarchy for `product` and a launch configuration with a random
    /// measurement, the default guest policy (SMT allowed, no debug, no migration agent) and
    /// [`DEFAULT_TCB`]. `now` backdates the certificates by a day to tolerate clock skew.
    ///
    /// Generating the two RSA-4096 keys takes seconds in a debug build.
    ///
    /// # Errors
    /// [`TeeError::AlreadyExists`] if `dir` already holds an environment, [`TeeError::Io`],
    /// [`TeeError::Simulation`].
    pub fn create(
        dir: &Path,
        product: Product,
        now: SystemTime,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Self, TeeError> {
        if dir.join(LAUNCH_FILE).exists() {
            return Err(TeeError::AlreadyExists {
                dir: dir.to_path_buf(),
            });
        }
        let not_before = now
            .checked_sub(Duration::from_secs(24 * 60 * 60))
            .unwrap_or(now);
        let platform = SimulatedPlatform::generate(product, not_before, rng)?;
        let mut measurement = [0u8; 48];
        rng.fill_bytes(&mut measurement);
        let launch = SimulatedLaunch {
            product: product.name().to_owned(),
            measurement: hex::encode(measurement),
            guest_policy: SimulatedPolicy {
                smt: true,
                ..SimulatedPolicy::default()
            },
            tcb: DEFAULT_TCB,
        };

        let platform_dir = dir.join(PLATFORM_DIR);
        create_dir(&platform_dir)?;
        for (name, contents) in platform.save()?.iter() {
            write_private(&platform_dir.join(name), contents)?;
        }
        let launch_json = serde_json::to_vec_pretty(&launch).map_err(|e| TeeError::Invalid {
            path: dir.join(LAUNCH_FILE),
            reason: e.to_string(),
        })?;
        // Written last: its presence marks a complete environment.
        write_private(&dir.join(LAUNCH_FILE), &launch_json)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            platform: Arc::new(platform),
            launch,
            product,
            measurement,
        })
    }

    /// Loads the environment kept in `dir`.
    ///
    /// # Errors
    /// [`TeeError::Io`] naming the file that cannot be read, [`TeeError::Invalid`] for a malformed
    /// launch configuration, [`TeeError::Simulation`] for a malformed or inconsistent platform.
    pub fn load(dir: &Path) -> Result<Self, TeeError> {
        let launch_path = dir.join(LAUNCH_FILE);
        let launch_json = read(&launch_path)?;
        let launch: SimulatedLaunch =
            serde_json::from_slice(&launch_json).map_err(|e| TeeError::Invalid {
                path: launch_path.clone(),
                reason: e.to_string(),
            })?;
        let product = Product::from_name(&launch.product).ok_or_else(|| TeeError::Invalid {
            path: launch_path.clone(),
            reason: format!(
                "product {:?} is not one of Milan, Genoa, Turin",
                launch.product
            ),
        })?;
        if product == Product::Turin {
            return Err(TeeError::Invalid {
                path: launch_path,
                reason: "simulated Turin launches are not supported (their TCB has an FMC field)"
                    .into(),
            });
        }
        let measurement =
            parse_measurement(&launch.measurement).map_err(|reason| TeeError::Invalid {
                path: launch_path.clone(),
                reason,
            })?;

        let platform_dir = dir.join(PLATFORM_DIR);
        let mut files = SimulatedPlatformFiles::new();
        for name in contrast_sim::files::ALL {
            files.insert(name, read(&platform_dir.join(name))?);
        }
        let platform = SimulatedPlatform::load(&files)?;
        if platform.product() != product {
            return Err(TeeError::Invalid {
                path: launch_path,
                reason: format!(
                    "the launch names {} but the platform is {}",
                    product.name(),
                    platform.product().name()
                ),
            });
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            platform: Arc::new(platform),
            launch,
            product,
            measurement,
        })
    }

    /// The directory the environment was loaded from.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The simulated AMD platform.
    #[must_use]
    pub fn platform(&self) -> &Arc<SimulatedPlatform> {
        &self.platform
    }

    /// The launch configuration.
    #[must_use]
    pub fn launch(&self) -> &SimulatedLaunch {
        &self.launch
    }

    /// The manifest reference values (`ReferenceValues.snp` entry) accepting this environment's
    /// VMs: platform `Simulated-SNP` with this ARK's fingerprint pinned, the launch's
    /// measurement and guest policy, and its TCB as the minimum.
    #[must_use]
    pub fn reference_values(&self) -> SnpReferenceValues {
        self.platform.reference_values(
            &self.measurement,
            &GuestPolicy::from(self.launch.guest_policy),
            self.launch.tcb.into(),
        )
    }

    /// A VM of this environment on chip `chip_id` whose HOST_DATA is `host_data` (the initdata
    /// digest the runtime would set), launched as configured.
    ///
    /// # Errors
    /// [`TeeError::Simulation`] if the launch cannot be laid out.
    pub fn guest(
        &self,
        chip_id: [u8; 64],
        host_data: [u8; 32],
    ) -> Result<SimulatedGuest, TeeError> {
        self.guest_with(chip_id, host_data, &LaunchOverrides::default())
    }

    /// As [`SimulatedEnvironment::guest`], with parts of the launch replaced (to produce VMs a
    /// verifier must refuse: a debug policy, a low TCB, another measurement).
    ///
    /// # Errors
    /// [`TeeError::Simulation`] if the launch cannot be laid out.
    pub fn guest_with(
        &self,
        chip_id: [u8; 64],
        host_data: [u8; 32],
        overrides: &LaunchOverrides,
    ) -> Result<SimulatedGuest, TeeError> {
        let mut policy = GuestPolicy::from(self.launch.guest_policy);
        if overrides.debug {
            policy.debug = true;
        }
        let measurement = overrides.measurement.unwrap_or(self.measurement);
        let tcb = overrides.tcb.unwrap_or(self.launch.tcb);
        let mut guest =
            SimulatedGuest::launched(self.product, chip_id, tcb.into(), measurement, &policy)?;
        guest.host_data = host_data;
        Ok(guest)
    }

    /// An attestation issuer for `guest` on this platform.
    #[must_use]
    pub fn issuer(&self, guest: SimulatedGuest) -> Arc<dyn Issuer> {
        Arc::new(SimulatedIssuer::new(Arc::clone(&self.platform), guest))
    }
}

/// Deviations from an environment's launch configuration for one VM.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LaunchOverrides {
    /// Launch with the guest policy's debug bit set.
    pub debug: bool,
    /// Report this TCB instead of the launch's.
    pub tcb: Option<SimulatedTcb>,
    /// Report this MEASUREMENT instead of the launch's.
    pub measurement: Option<[u8; 48]>,
}

fn parse_measurement(text: &str) -> Result<[u8; 48], String> {
    let bytes = hex::decode(text).map_err(|e| format!("measurement is not hex: {e}"))?;
    <[u8; 48]>::try_from(bytes.as_slice()).map_err(|_| {
        format!(
            "measurement is {} bytes, expected 48 (96 hex digits)",
            bytes.len()
        )
    })
}

fn read(path: &Path) -> Result<Vec<u8>, TeeError> {
    fs::read(path).map_err(|source| TeeError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn create_dir(path: &Path) -> Result<(), TeeError> {
    fs::create_dir_all(path).map_err(|source| TeeError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes a file readable by its owner only: the platform files hold private keys.
fn write_private(path: &Path, contents: &[u8]) -> Result<(), TeeError> {
    let io = |source| TeeError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(io)?;
    file.write_all(contents).map_err(io)?;
    file.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use contrast_attest::evidence::SnpEvidence;

    fn environment() -> (tempfile::TempDir, SimulatedEnvironment) {
        let dir = tempfile::tempdir().unwrap();
        let env = SimulatedEnvironment::create(
            dir.path(),
            Product::Milan,
            SystemTime::now(),
            &mut rand_core::OsRng,
        )
        .unwrap();
        (dir, env)
    }

    #[test]
    fn create_then_load_gives_the_same_environment() {
        let (dir, created) = environment();
        let loaded = SimulatedEnvironment::load(dir.path()).unwrap();
        assert_eq!(loaded.launch(), created.launch());
        assert_eq!(
            loaded.platform().ark_fingerprint(),
            created.platform().ark_fingerprint()
        );
        assert_eq!(loaded.reference_values(), created.reference_values());
        let rv = loaded.reference_values();
        assert_eq!(rv.platform, contrast_core::manifest::SIMULATED_SNP_PLATFORM);
        assert_eq!(rv.trusted_measurement, created.launch().measurement);

        // A second create in the same directory is refused and changes nothing.
        let again = SimulatedEnvironment::create(
            dir.path(),
            Product::Milan,
            SystemTime::now(),
            &mut rand_core::OsRng,
        );
        assert!(matches!(again, Err(TeeError::AlreadyExists { .. })));
        let reloaded = SimulatedEnvironment::load(dir.path()).unwrap();
        assert_eq!(reloaded.launch(), created.launch());
    }

    #[test]
    fn guests_carry_host_data_and_overrides() {
        let (_dir, env) = environment();
        let host_data = [7u8; 32];
        let guest = env.guest([1; 64], host_data).unwrap();
        assert_eq!(guest.host_data, host_data);
        assert_eq!(hex::encode(guest.measurement), env.launch().measurement);

        let low = SimulatedTcb {
            snp: 1,
            ..DEFAULT_TCB
        };
        let odd = env
            .guest_with(
                [1; 64],
                host_data,
                &LaunchOverrides {
                    debug: true,
                    tcb: Some(low),
                    measurement: Some([9; 48]),
                },
            )
            .unwrap();
        assert_eq!(odd.measurement, [9; 48]);
        assert_eq!(odd.reported_tcb.snp, 1);
        assert_ne!(odd.policy, guest.policy, "debug bit set");

        let document = env.issuer(guest).issue(&[3; 64]).unwrap();
        let parsed = SnpEvidence::parse(&document).unwrap();
        assert_eq!(parsed.report_data(), [3; 64]);
    }

    #[test]
    fn load_names_the_broken_file() {
        let (dir, _env) = environment();
        fs::write(dir.path().join(LAUNCH_FILE), b"{\"product\": \"Milan\"}").unwrap();
        match SimulatedEnvironment::load(dir.path()) {
            Err(TeeError::Invalid { path, reason }) => {
                assert!(path.ends_with(LAUNCH_FILE));
                assert!(reason.contains("missing field"), "{reason}");
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
        let (dir, _env) = environment();
        fs::remove_file(
            dir.path()
                .join(PLATFORM_DIR)
                .join(contrast_sim::files::ARK_KEY),
        )
        .unwrap();
        assert!(matches!(
            SimulatedEnvironment::load(dir.path()),
            Err(TeeError::Io { .. })
        ));
        let empty = tempfile::tempdir().unwrap();
        match SimulatedEnvironment::load(empty.path()) {
            Err(TeeError::Io { path, .. }) => assert!(path.ends_with(LAUNCH_FILE)),
            other => panic!("expected Io, got {other:?}"),
        }
    }
}
