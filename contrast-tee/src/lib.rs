//! TEE access for the contrast-rs binaries (`coordinator`, `initializer`, `contrast`).
//!
//! A process inside a confidential VM needs an attestation [`Issuer`]: something that turns 64
//! bytes of report data into an attestation document. This crate provides the two the binaries
//! choose between with the shared flags of [`TeeArgs`]:
//!
//! - `--tee snp`: a real AMD SEV-SNP guest ([`snp`]), reports from the kernel, with VCEK, CA
//!   chain and CRL fetched from the KDS ([`collateral`], unless `--no-kds`).
//! - `--tee simulated --sim-dir DIR`: the simulated platform of `contrast-sim` (feature
//!   `simulated`, off by default), kept in a directory that every process of a local deployment
//!   shares (`simulated::SimulatedEnvironment`). Simulated mode is never a default: it must be
//!   compiled in and asked for explicitly, and verifiers trust a simulated ARK only where a
//!   manifest pins it. A binary accepts it only when built with a `simulated` feature of its own
//!   ([`TeeArgs::check_simulated_allowed`], [`binary_version!`]).
//!
//! Unlike the library crates, this one does I/O (files, devices); it is the binaries' side.

#![forbid(unsafe_code)]

pub mod collateral;
#[cfg(feature = "simulated")]
pub mod simulated;
pub mod snp;

use std::path::PathBuf;
use std::sync::Arc;

use contrast_attest::atls::Issuer;
use rand_core::CryptoRngCore;

#[cfg(feature = "simulated")]
pub use simulated::{
    LaunchOverrides, SimulatedEnvironment, SimulatedLaunch, SimulatedRevocation,
    SimulatedRevocations, SimulatedTcb,
};

/// What a binary's `--version` line ends with when the binary accepts `--tee simulated` (see
/// [`binary_version!`]); `contrast demo` looks for it before starting a binary in simulated mode.
pub const SIMULATED_VERSION_TAG: &str = "+simulated";

/// Whether the binary at `path` accepts `--tee simulated`: it runs and the first line of its
/// `--version` ends with [`SIMULATED_VERSION_TAG`] (see [`binary_version!`]). For tools that start the binaries
/// in simulated mode (`contrast demo`, the load generator's tests).
#[must_use]
pub fn binary_has_simulated_tee(path: &std::path::Path) -> bool {
    std::process::Command::new(path)
        .arg("--version")
        .output()
        .is_ok_and(|out| {
            out.status.success()
                && String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .next()
                    .is_some_and(|line| line.trim_end().ends_with(SIMULATED_VERSION_TAG))
        })
}

/// The `--version` line of a binary: its package version and the commit it was built from,
/// followed by [`SIMULATED_VERSION_TAG`] when the *calling* crate is built with its own feature
/// `simulated`. The commit comes from the environment variable `CONTRAST_BUILD_COMMIT`, which the
/// binaries' build script (`bins/build_commit.rs`) sets; `binary_version!("abc")` passes it
/// explicitly. For clap: `#[command(version = contrast_tee::binary_version!(), long_version =
/// contrast_tee::binary_long_version!())]`.
#[macro_export]
macro_rules! binary_version {
    () => {
        $crate::binary_version!(env!("CONTRAST_BUILD_COMMIT"))
    };
    ($commit:expr) => {
        if cfg!(feature = "simulated") {
            $crate::version_line!($commit, simulated)
        } else {
            $crate::version_line!($commit)
        }
    };
}

/// The first line of every binary's `--version`: the calling crate's package version and
/// `$commit`, then [`SIMULATED_VERSION_TAG`] with `version_line!(commit, simulated)`. The one
/// spelling of the line [`binary_has_simulated_tee`] reads.
#[macro_export]
macro_rules! version_line {
    ($commit:expr) => {
        concat!(env!("CARGO_PKG_VERSION"), " (commit ", $commit, ")")
    };
    ($commit:expr, simulated) => {
        concat!($crate::version_line!($commit), " +simulated")
    };
}

/// The `--version` text (clap's long version): the [`binary_version!`] line, then which TEEs
/// the binary can attest with ([`tee_support!`]) and which platforms it verifies
/// ([`verified_platforms!`]).
#[macro_export]
macro_rules! binary_long_version {
    () => {
        $crate::binary_long_version!(env!("CONTRAST_BUILD_COMMIT"))
    };
    ($commit:expr) => {
        if cfg!(feature = "simulated") {
            concat!(
                $crate::version_line!($commit, simulated),
                "\n",
                $crate::tee_support!(simulated),
                "\n",
                $crate::verified_platforms!()
            )
        } else {
            concat!(
                $crate::version_line!($commit),
                "\n",
                $crate::tee_support!(),
                "\n",
                $crate::verified_platforms!()
            )
        }
    };
}

/// The TEEs a binary attests with, for `--version`: `tee_support!(simulated)` for a build with
/// the simulated platform.
#[macro_export]
macro_rules! tee_support {
    () => {
        concat!(
            "TEE: SEV-SNP guest reports via configfs-tsm or /dev/sev-guest (--tee snp, the default)\n",
            "     the simulated SEV-SNP platform: not built in (its feature `simulated` is off)"
        )
    };
    (simulated) => {
        concat!(
            "TEE: SEV-SNP guest reports via configfs-tsm or /dev/sev-guest (--tee snp, the default)\n",
            "     the simulated SEV-SNP platform (--tee simulated): built in, for development and tests"
        )
    };
}

/// What the verifier of every binary accepts, for `--version`.
#[macro_export]
macro_rules! verified_platforms {
    () => {
        "verifies: SEV-SNP on Milan, Genoa and Turin (VCEK or VLEK), Simulated-SNP by its pinned ARK; not TDX"
    };
}

/// Why a TEE could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TeeError {
    /// A file or device could not be read or written.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file or device.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file has the wrong contents.
    #[error("{}: {reason}", .path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// `create` was asked to overwrite an existing simulated environment.
    #[error("{} already holds a simulated environment; use it, or pick an empty directory", .dir.display())]
    AlreadyExists {
        /// The directory.
        dir: PathBuf,
    },
    /// The simulated platform failed.
    #[cfg(feature = "simulated")]
    #[error("simulated platform: {0}")]
    Simulation(#[from] contrast_sim::SimError),
    /// `--tee simulated` was asked of a build without the simulated platform.
    #[error(
        "--tee simulated: {binary} was built without the simulated platform; rebuild it with \
         `cargo build -p {binary} --features simulated` (development and tests only)"
    )]
    SimulatedNotBuilt {
        /// The binary (package) that refused, e.g. `coordinator`.
        binary: &'static str,
    },
    /// A flag is missing or malformed.
    #[error("{flag}: {reason}")]
    Flag {
        /// The flag, e.g. `--sim-dir`.
        flag: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The SEV-SNP guest interface is not usable.
    #[error("sev-snp guest: {0}")]
    Snp(String),
}

/// Which TEE a binary attests with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TeeKind {
    /// AMD SEV-SNP: reports from configfs-tsm or `/dev/sev-guest`.
    Snp,
    /// The simulated SEV-SNP platform in `--sim-dir` (no hardware; for local runs and tests).
    Simulated,
}

/// The TEE flags shared by the binaries (flatten into a clap command with
/// `#[command(flatten)]`).
#[derive(Clone, Debug, clap::Args)]
pub struct TeeArgs {
    /// The TEE to attest with. `simulated` needs --sim-dir and is never chosen implicitly.
    #[arg(long, value_enum, default_value = "snp", env = "CONTRAST_TEE")]
    pub tee: TeeKind,
    /// With --tee simulated: the simulated environment's directory (`contrast simulate`
    /// creates one).
    #[arg(long, value_name = "DIR", env = "CONTRAST_SIM_DIR")]
    pub sim_dir: Option<PathBuf>,
    /// With --tee simulated: the VM's HOST_DATA (64 hex digits), i.e. the initdata digest the
    /// runtime would set for this pod.
    #[arg(long, value_name = "HEX", env = "CONTRAST_SIM_HOST_DATA")]
    pub sim_host_data: Option<String>,
    /// With --tee simulated: the chip ID (128 hex digits); default: a random chip per process.
    #[arg(long, value_name = "HEX")]
    pub sim_chip_id: Option<String>,
    /// With --tee simulated: launch with the debug policy bit set (a VM verifiers must refuse).
    #[arg(long)]
    pub sim_debug: bool,
    /// With --tee simulated: report this TCB instead of the launch's, as
    /// `BOOTLOADER.TEE.SNP.MICROCODE` (e.g. `4.0.1.213`).
    #[arg(long, value_name = "TCB")]
    pub sim_tcb: Option<String>,
    /// With --tee simulated: report this MEASUREMENT (96 hex digits) instead of the launch's.
    #[arg(long, value_name = "HEX")]
    pub sim_measurement: Option<String>,
    /// With --tee snp: a directory holding the VCEK (`vcek.pem` or `vcek.der`) and the AMD
    /// chain (`ask.pem`, `ark.pem`), used when the kernel's extended report carries none.
    #[arg(long, value_name = "DIR")]
    pub snp_certs_dir: Option<PathBuf>,
    /// With --tee snp: AMD's Key Distribution Service, where the VCEK, CA chain and CRL come
    /// from (they travel in the attestation, so verifiers need no network).
    #[arg(long, value_name = "URL", env = "CONTRAST_KDS_URL", default_value = contrast_attest::collateral::KDS_BASE_URL)]
    pub kds_url: String,
    /// With --tee snp: a collateral proxy asked before the KDS (KDS paths on its base URL;
    /// after five failed attempts the KDS is asked directly for two minutes).
    #[arg(long, value_name = "URL", env = "CONTRAST_COLLATERAL_PROXY")]
    pub collateral_proxy: Option<String>,
    /// With --tee snp: an on-disk collateral cache (`contrast collateral fetch` fills one for
    /// machines without network access).
    #[arg(long, value_name = "DIR", env = "CONTRAST_COLLATERAL_CACHE")]
    pub collateral_cache: Option<PathBuf>,
    /// With --tee snp: fetch no collateral; certificates come only from the host and
    /// --snp-certs-dir, and documents carry no CRL (verifiers that require one refuse).
    #[arg(long)]
    pub no_kds: bool,
    /// With --tee snp: the AMD product, when the reports do not name it (report version 2).
    #[arg(long, value_name = "PRODUCT", value_parser = ["Milan", "Genoa", "Turin"])]
    pub snp_product: Option<String>,
}

/// What [`TeeArgs::open`] set up.
#[derive(Debug)]
#[non_exhaustive]
pub struct OpenedTee {
    /// The issuer of attestation documents.
    pub issuer: Arc<dyn Issuer>,
    /// In simulated mode, the simulated environment's directory (for logs).
    pub sim_dir: Option<PathBuf>,
    /// With --tee snp unless --no-kds: the feed that keeps the issuer supplied with
    /// collateral; spawn [`CollateralFeed::run`](collateral::CollateralFeed::run).
    pub collateral: Option<collateral::CollateralFeed>,
}

impl TeeArgs {
    /// Refuses `--tee simulated` in a binary built without its own `simulated` feature: call it
    /// with `cfg!(feature = "simulated")` of the binary before [`TeeArgs::open`]. (This
    /// crate's feature alone is not enough: cargo unifies it across everything built together,
    /// e.g. with the `contrast` CLI, which always has it.)
    ///
    /// # Errors
    /// [`TeeError::SimulatedNotBuilt`] naming `binary` and the command that rebuilds it.
    pub fn check_simulated_allowed(
        &self,
        binary: &'static str,
        built_with_simulated: bool,
    ) -> Result<(), TeeError> {
        if self.tee == TeeKind::Simulated && !(built_with_simulated && cfg!(feature = "simulated"))
        {
            return Err(TeeError::SimulatedNotBuilt { binary });
        }
        Ok(())
    }

    /// The issuer these flags select, with (on hardware, unless --no-kds) the collateral feed
    /// that keeps it supplied.
    ///
    /// # Errors
    /// [`TeeError::Flag`] for a missing or malformed flag, [`TeeError::SimulatedNotBuilt`] for
    /// `--tee simulated` without this crate's feature `simulated`, or the TEE's own error.
    pub fn open(&self, rng: &mut impl CryptoRngCore) -> Result<OpenedTee, TeeError> {
        match self.tee {
            TeeKind::Snp if self.no_kds => {
                let issuer =
                    snp::SnpIssuer::open(self.snp_certs_dir.as_deref(), snp::MissingVcek::Refuse)?;
                Ok(OpenedTee {
                    issuer: Arc::new(issuer),
                    sim_dir: None,
                    collateral: None,
                })
            }
            TeeKind::Snp => {
                let issuer = Arc::new(snp::SnpIssuer::open(
                    self.snp_certs_dir.as_deref(),
                    snp::MissingVcek::Supplied,
                )?);
                let product = match (&self.snp_product, issuer.chip().cpuid_product) {
                    (Some(name), found) => {
                        let given = contrast_attest::Product::from_name(name).ok_or_else(|| {
                            TeeError::Flag {
                                flag: "--snp-product",
                                reason: format!("unknown product {name}"),
                            }
                        })?;
                        if found.is_some_and(|found| found != given) {
                            return Err(TeeError::Flag {
                                flag: "--snp-product",
                                reason: format!(
                                    "{name}, but the reports name {}",
                                    found.map_or("", |p| p.name())
                                ),
                            });
                        }
                        given
                    }
                    (None, Some(found)) => found,
                    (None, None) => {
                        return Err(TeeError::Flag {
                            flag: "--snp-product",
                            reason: "the reports do not name the AMD product (version 2); give \
                                     --snp-product, or --no-kds to fetch no collateral"
                                .into(),
                        });
                    }
                };
                let client = contrast_kds::CollateralClient::new(contrast_kds::ClientConfig {
                    kds_base: self.kds_url.clone(),
                    proxy: self.collateral_proxy.clone(),
                    cache_dir: self.collateral_cache.clone(),
                    ..contrast_kds::ClientConfig::default()
                })
                .map_err(|e| TeeError::Flag {
                    flag: "--kds-url / --collateral-proxy",
                    reason: e.to_string(),
                })?;
                let feed = collateral::CollateralFeed::new(
                    Arc::clone(&issuer),
                    client,
                    contrast_attest::chain::TrustAnchor::Amd(product),
                    product,
                );
                Ok(OpenedTee {
                    issuer,
                    sim_dir: None,
                    collateral: Some(feed),
                })
            }
            #[cfg(not(feature = "simulated"))]
            TeeKind::Simulated => {
                let _ = rng;
                Err(TeeError::SimulatedNotBuilt {
                    binary: "contrast-tee",
                })
            }
            #[cfg(feature = "simulated")]
            TeeKind::Simulated => {
                let dir = self.sim_dir.as_ref().ok_or(TeeError::Flag {
                    flag: "--sim-dir",
                    reason: "--tee simulated needs the simulated environment's directory".into(),
                })?;
                let env = SimulatedEnvironment::load(dir)?;
                let host_data = match &self.sim_host_data {
                    Some(text) => parse_hex::<32>("--sim-host-data", text)?,
                    None => {
                        return Err(TeeError::Flag {
                            flag: "--sim-host-data",
                            reason: "--tee simulated needs the VM's HOST_DATA (its initdata \
                                     digest, 64 hex digits)"
                                .into(),
                        });
                    }
                };
                let chip_id = match &self.sim_chip_id {
                    Some(text) => parse_hex::<64>("--sim-chip-id", text)?,
                    None => {
                        let mut chip_id = [0u8; 64];
                        rng.fill_bytes(&mut chip_id);
                        chip_id
                    }
                };
                let overrides = LaunchOverrides {
                    debug: self.sim_debug,
                    tcb: self.sim_tcb.as_deref().map(parse_tcb).transpose()?,
                    measurement: self
                        .sim_measurement
                        .as_deref()
                        .map(|text| parse_hex::<48>("--sim-measurement", text))
                        .transpose()?,
                };
                let guest = env.guest_with(chip_id, host_data, &overrides)?;
                Ok(OpenedTee {
                    issuer: env.issuer(guest),
                    sim_dir: Some(env.dir().to_path_buf()),
                    collateral: None,
                })
            }
        }
    }
}

#[cfg(feature = "simulated")]
fn parse_hex<const N: usize>(flag: &'static str, text: &str) -> Result<[u8; N], TeeError> {
    let bytes = hex::decode(text.trim()).map_err(|e| TeeError::Flag {
        flag,
        reason: format!("not hex: {e}"),
    })?;
    <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| TeeError::Flag {
        flag,
        reason: format!("{} bytes, expected {N} ({} hex digits)", bytes.len(), 2 * N),
    })
}

#[cfg(feature = "simulated")]
fn parse_tcb(text: &str) -> Result<SimulatedTcb, TeeError> {
    // Simulated launches use the Milan/Genoa layout (no FMC).
    let tcb = contrast_attest::TcbVersion::parse_dotted(text, contrast_attest::Product::Milan)
        .map_err(|reason| TeeError::Flag {
            flag: "--sim-tcb",
            reason,
        })?;
    Ok(SimulatedTcb {
        bootloader: tcb.bootloader,
        tee: tcb.tee,
        snp: tcb.snp,
        microcode: tcb.microcode,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        tee: TeeArgs,
    }

    fn args(extra: &[&str]) -> TeeArgs {
        let mut argv = vec!["test"];
        argv.extend_from_slice(extra);
        Command::try_parse_from(argv).unwrap().tee
    }

    #[test]
    fn simulated_mode_needs_the_binary_feature() {
        let simulated = args(&["--tee", "simulated"]);
        assert!(matches!(
            simulated.check_simulated_allowed("coordinator", false),
            Err(TeeError::SimulatedNotBuilt {
                binary: "coordinator"
            })
        ));
        let message = simulated
            .check_simulated_allowed("coordinator", false)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("cargo build -p coordinator --features simulated"),
            "{message}"
        );
        assert_eq!(
            simulated
                .check_simulated_allowed("coordinator", true)
                .is_ok(),
            cfg!(feature = "simulated")
        );
        // SNP never needs the feature.
        assert!(
            args(&[])
                .check_simulated_allowed("coordinator", false)
                .is_ok()
        );
    }

    #[test]
    fn binary_version_tags_simulated_builds() {
        // This crate's own feature is what `cfg!` sees here.
        let version = binary_version!("0123abcd");
        assert!(version.starts_with(concat!(env!("CARGO_PKG_VERSION"), " (commit 0123abcd)")));
        assert_eq!(
            version.ends_with(&format!(" {SIMULATED_VERSION_TAG}")),
            cfg!(feature = "simulated")
        );
        let long = binary_long_version!("0123abcd");
        assert_eq!(long.lines().next(), Some(version));
        assert!(long.contains("TEE: SEV-SNP"), "{long}");
    }

    #[test]
    fn a_missing_binary_has_no_simulated_tee() {
        assert!(!binary_has_simulated_tee(std::path::Path::new(
            "/nonexistent/contrast-tee-test-binary"
        )));
    }

    #[cfg(not(feature = "simulated"))]
    #[test]
    fn simulated_mode_is_refused_without_the_feature() {
        assert!(matches!(
            args(&["--tee", "simulated", "--sim-dir", "x"]).open(&mut rand_core::OsRng),
            Err(TeeError::SimulatedNotBuilt { .. })
        ));
    }

    #[cfg(feature = "simulated")]
    #[test]
    fn simulated_mode_needs_its_flags() {
        let missing_dir = args(&["--tee", "simulated"]).open(&mut rand_core::OsRng);
        assert!(matches!(
            missing_dir,
            Err(TeeError::Flag {
                flag: "--sim-dir",
                ..
            })
        ));
        let dir = tempfile::tempdir().unwrap();
        SimulatedEnvironment::create(
            dir.path(),
            contrast_attest::Product::Milan,
            std::time::SystemTime::now(),
            &mut rand_core::OsRng,
        )
        .unwrap();
        let sim_dir = dir.path().to_str().unwrap();
        let missing_host_data =
            args(&["--tee", "simulated", "--sim-dir", sim_dir]).open(&mut rand_core::OsRng);
        assert!(matches!(
            missing_host_data,
            Err(TeeError::Flag {
                flag: "--sim-host-data",
                ..
            })
        ));
        let short = args(&[
            "--tee",
            "simulated",
            "--sim-dir",
            sim_dir,
            "--sim-host-data",
            "abcd",
        ])
        .open(&mut rand_core::OsRng);
        match short {
            Err(TeeError::Flag { flag, reason }) => {
                assert_eq!(flag, "--sim-host-data");
                assert!(reason.contains("2 bytes, expected 32"), "{reason}");
            }
            other => panic!("expected a flag error, got {other:?}"),
        }
        let host_data = "11".repeat(32);
        let opened = args(&[
            "--tee",
            "simulated",
            "--sim-dir",
            sim_dir,
            "--sim-host-data",
            &host_data,
            "--sim-tcb",
            "4.0.1.213",
        ])
        .open(&mut rand_core::OsRng)
        .unwrap();
        assert_eq!(opened.sim_dir.as_deref(), Some(dir.path()));
        assert_eq!(
            opened.issuer.oid(),
            contrast_attest::atls::SNP_ATTESTATION_OID
        );
        assert!(opened.collateral.is_none());
    }

    #[cfg(feature = "simulated")]
    #[test]
    fn tcb_flag_is_four_numbers() {
        assert_eq!(
            parse_tcb("4.0.23.213").unwrap(),
            SimulatedTcb {
                bootloader: 4,
                tee: 0,
                snp: 23,
                microcode: 213
            }
        );
        for bad in ["4.0.23", "4.0.23.256", "a.b.c.d", ""] {
            assert!(
                matches!(
                    parse_tcb(bad),
                    Err(TeeError::Flag {
                        flag: "--sim-tcb",
                        ..
                    })
                ),
                "{bad}"
            );
        }
    }
}
