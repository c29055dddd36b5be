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
//! - `revocations.json` (optional): what the simulated AMD has revoked ([`SimulatedRevocations`],
//!   written by [`SimulatedEnvironment::revoke`]). Every simulated document carries a CRL signed
//!   by the simulated ARK that lists these ([`SimulatedEnvironment::crl`]), as upstream's issuer
//!   sends AMD's, so verifiers can require one.
//!
//! Every process picks its own chip ID (by default a random one), so every simulated VM has its
//! own VCEK, as on a real cluster of machines.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use contrast_attest::atls::Issuer;
use contrast_attest::{Product, TcbVersion};
use contrast_core::manifest::{GuestPolicy, SnpReferenceValues};
use contrast_sim::SimulatedIssuer;
use contrast_sim::{
    CrlContents, Revocation, SimulatedGuest, SimulatedPlatform, SimulatedPlatformFiles,
};
use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};

use crate::TeeError;

/// The file holding the launch configuration.
pub const LAUNCH_FILE: &str = "launch.json";
/// The subdirectory holding the simulated AMD hierarchy.
pub const PLATFORM_DIR: &str = "platform";
/// The file listing the simulated platform's revocations.
pub const REVOCATIONS_FILE: &str = "revocations.json";

/// How long a simulated CRL is valid (nextUpdate - thisUpdate), as a week of AMD's.
pub const CRL_VALIDITY: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// A simulated CRL is signed anew after this (and when the revocations change).
const CRL_REFRESH: Duration = Duration::from_secs(60 * 60);
/// thisUpdate is backdated by this, to tolerate clock skew between simulated machines.
const CRL_BACKDATE: Duration = Duration::from_secs(5 * 60);

/// What the simulated AMD has revoked (`revocations.json`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatedRevocations {
    /// The revoked certificates, oldest first.
    pub revoked: Vec<SimulatedRevocation>,
}

/// One revoked certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatedRevocation {
    /// The serial number, lowercase hex (big-endian, no leading zero byte).
    pub serial: String,
    /// When it was revoked, seconds since the epoch.
    pub revoked_at: u64,
    /// What it is, for people (e.g. `VCEK of chip 5c5c…`).
    pub what: String,
}

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
    /// The last CRL signed, shared by every issuer of this environment.
    crl: Arc<Mutex<Option<SignedCrl>>>,
}

/// A CRL and what it was signed from.
struct SignedCrl {
    der: Vec<u8>,
    revocations: SimulatedRevocations,
    signed_at: SystemTime,
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
            crl: Arc::default(),
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
            crl: Arc::default(),
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

    /// An attestation issuer for `guest` on this platform; its documents carry the current
    /// CRL ([`SimulatedEnvironment::crl`]).
    #[must_use]
    pub fn issuer(&self, guest: SimulatedGuest) -> Arc<dyn Issuer> {
        let environment = self.clone();
        Arc::new(
            SimulatedIssuer::new(Arc::clone(&self.platform), guest).with_crl(Arc::new(move || {
                environment.crl(SystemTime::now()).map_err(|e| {
                    contrast_sim::SimError::InvalidFile {
                        name: REVOCATIONS_FILE,
                        reason: e.to_string(),
                    }
                })
            })),
        )
    }

    /// What the simulated AMD has revoked (empty without `revocations.json`).
    ///
    /// # Errors
    /// [`TeeError::Io`] or [`TeeError::Invalid`] naming the file.
    pub fn revocations(&self) -> Result<SimulatedRevocations, TeeError> {
        let path = self.dir.join(REVOCATIONS_FILE);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(SimulatedRevocations::default());
            }
            Err(source) => return Err(TeeError::Io { path, source }),
        };
        serde_json::from_slice(&bytes).map_err(|e| TeeError::Invalid {
            path,
            reason: e.to_string(),
        })
    }

    /// Revokes the certificate with `serial` (big-endian) at `now`: it is added to
    /// `revocations.json` (atomically; a serial already listed is left as it is), and every
    /// CRL signed from then on lists it. `what` says what it is, for people.
    ///
    /// # Errors
    /// As [`SimulatedEnvironment::revocations`]; [`TeeError::Io`] if the file cannot be
    /// written.
    pub fn revoke(&self, serial: &[u8], what: &str, now: SystemTime) -> Result<bool, TeeError> {
        let mut revocations = self.revocations()?;
        let serial = hex::encode(serial);
        if revocations.revoked.iter().any(|r| r.serial == serial) {
            return Ok(false);
        }
        revocations.revoked.push(SimulatedRevocation {
            serial,
            revoked_at: unix_seconds(now),
            what: what.to_owned(),
        });
        let path = self.dir.join(REVOCATIONS_FILE);
        let json = serde_json::to_vec_pretty(&revocations).map_err(|e| TeeError::Invalid {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        contrast_fs::write_atomic(&path, &json, Some(0o644)).map_err(|e| TeeError::Io {
            path,
            source: std::io::Error::other(e.to_string()),
        })?;
        Ok(true)
    }

    /// The simulated ARK's CRL at `now`: the revocations of `revocations.json`, thisUpdate a
    /// few minutes before `now`, nextUpdate [`CRL_VALIDITY`] after. The signed CRL is kept and
    /// handed out again until the revocations change or it is an hour old.
    ///
    /// # Errors
    /// As [`SimulatedEnvironment::revocations`]; [`TeeError::Simulation`] if signing fails.
    pub fn crl(&self, now: SystemTime) -> Result<Vec<u8>, TeeError> {
        let revocations = self.revocations()?;
        let mut cached = self.crl.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(signed) = cached.as_ref()
            && signed.revocations == revocations
            && now
                .duration_since(signed.signed_at)
                .is_ok_and(|age| age < CRL_REFRESH)
        {
            return Ok(signed.der.clone());
        }
        let revoked = revocations
            .revoked
            .iter()
            .map(|r| {
                Ok(Revocation {
                    serial: hex::decode(&r.serial).map_err(|e| TeeError::Invalid {
                        path: self.dir.join(REVOCATIONS_FILE),
                        reason: format!("serial {:?} is not hex: {e}", r.serial),
                    })?,
                    revoked_at: UNIX_EPOCH + Duration::from_secs(r.revoked_at),
                })
            })
            .collect::<Result<Vec<_>, TeeError>>()?;
        let der = self.platform.crl(&CrlContents {
            revoked,
            this_update: now.checked_sub(CRL_BACKDATE).unwrap_or(now),
            next_update: now + CRL_VALIDITY,
            // Increases with every signing, as AMD's does with every issue.
            number: unix_seconds(now),
        })?;
        *cached = Some(SignedCrl {
            der: der.clone(),
            revocations,
            signed_at: now,
        });
        Ok(der)
    }
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |duration| duration.as_secs())
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

    /// Every document carries a CRL the production verifier accepts with the CRL required; a
    /// VCEK revoked in `revocations.json` is refused by name, the next chip is not.
    #[test]
    fn documents_carry_a_crl_and_a_revoked_vcek_is_refused() {
        use contrast_attest::chain::{CertRole, CrlPolicy, TrustAnchor};
        use contrast_attest::{Error, RevocationStatus, UnixTime, verify_report};
        let (_dir, env) = environment();
        let (revoked_chip, other_chip) = ([0x11; 64], [0x22; 64]);
        let anchor = TrustAnchor::Pinned {
            ark_der_sha256: env.platform().ark_fingerprint(),
            product: Product::Milan,
        };
        let now = UnixTime::from_secs(unix_seconds(SystemTime::now()));
        let verify = |chip: [u8; 64]| {
            let document = env
                .issuer(env.guest(chip, [0; 32]).unwrap())
                .issue(&[3; 64])
                .unwrap();
            let evidence = SnpEvidence::parse(&document).unwrap();
            verify_report(
                evidence.report(),
                &evidence,
                &anchor,
                now,
                CrlPolicy::Required,
                None,
            )
            .map(|verified| verified.revocation)
        };
        assert!(matches!(
            verify(revoked_chip),
            Ok(RevocationStatus::Checked { .. })
        ));

        let serial = env
            .platform()
            .vcek_serial(&revoked_chip, env.launch().tcb.into());
        assert!(
            env.revoke(&serial, "VCEK of chip 11…", SystemTime::now())
                .unwrap()
        );
        assert!(
            !env.revoke(&serial, "again", SystemTime::now()).unwrap(),
            "a serial is listed once"
        );
        assert_eq!(env.revocations().unwrap().revoked.len(), 1);
        assert_eq!(
            verify(revoked_chip).unwrap_err(),
            Error::Revoked {
                role: CertRole::Vcek,
                serial
            }
        );
        assert!(verify(other_chip).is_ok());
        // Another process loading the environment sees the revocation too.
        let loaded = SimulatedEnvironment::load(env.dir()).unwrap();
        assert_eq!(loaded.revocations().unwrap(), env.revocations().unwrap());
    }

    #[test]
    fn the_crl_is_reused_until_the_revocations_change_or_it_ages() {
        let (_dir, env) = environment();
        let now = SystemTime::now();
        let first = env.crl(now).unwrap();
        assert_eq!(env.crl(now + Duration::from_secs(60)).unwrap(), first);
        let aged = env.crl(now + CRL_REFRESH + Duration::from_secs(1)).unwrap();
        assert_ne!(aged, first);
        env.revoke(&[1, 2, 3], "test", now).unwrap();
        assert_ne!(
            env.crl(now + CRL_REFRESH + Duration::from_secs(2)).unwrap(),
            aged
        );
    }

    #[test]
    fn a_malformed_revocations_file_is_named() {
        let (dir, env) = environment();
        fs::write(dir.path().join(REVOCATIONS_FILE), b"{\"revoked\": 7}").unwrap();
        match env.crl(SystemTime::now()) {
            Err(TeeError::Invalid { path, .. }) => {
                assert_eq!(path, dir.path().join(REVOCATIONS_FILE));
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
        assert!(
            env.issuer(env.guest([1; 64], [0; 32]).unwrap())
                .issue(&[0; 64])
                .is_err()
        );
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
