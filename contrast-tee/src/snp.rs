//! Attestation on real AMD SEV-SNP guests: reports from the kernel, packed with their
//! certificates into go-sev-guest `sevsnp.Attestation`s
//! ([`contrast_attest::evidence::AttestationBuilder`]) under upstream's [`SNP_ATTESTATION_OID`]
//! (`1.3.9901.2.1`).
//!
//! # Where reports come from
//!
//! 1. **configfs-tsm** (`/sys/kernel/config/tsm/report`, Linux ≥ 6.7): per report a fresh
//!    entry directory is made, the 64 bytes of report data are written to `inblob`, `provider`
//!    must say `sev_guest`, `outblob` is the report and `auxblob` the host's certificate table;
//!    `generation` is read after the write and again after the reads, and a change means another
//!    writer used the entry in between (the report may not be ours). The entry is removed after.
//!    [`ReportSource::ConfigfsTsmEntry`] reuses one existing entry instead (serialised within
//!    this process; the generation check catches other processes).
//! 2. **`/dev/sev-guest`** through the `sev` crate's `SNP_GET_REPORT`. The extended report
//!    (`SNP_GET_EXT_REPORT`) is deliberately not used: the `sev` crate walks the host-supplied
//!    certificate table with raw pointers and no bounds checks. With this source the
//!    certificates come from `--snp-certs-dir`.
//!
//! # Where certificates come from
//!
//! The VCEK (or VLEK), ASK/ASVK, ARK and CRL are taken from the certificate table
//! ([`CertTable`] of contrast-attest, GHCB spec #56421) when the host supplies them, else the VCEK,
//! ASK and ARK from `--snp-certs-dir` (`vcek.der` or `vcek.pem`, `ask.pem`, `ark.pem`). All of
//! them are host-supplied and only *presented*: the verifier's pinned ARK makes them
//! trustworthy or not. Without a VCEK from either, [`SnpIssuer::open`] fails.
//!
//! Third, collateral the binary fetched (from the KDS, a collateral proxy or a cache, with
//! `contrast-kds`) and handed in with [`SnpIssuer::supply`]: the VCEK for the chip and TCB of
//! [`SnpIssuer::chip`], the CA chain and the CRL. The CRL travels in the document (upstream's
//! extras key) so verifiers can require one; the host's table rarely carries it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use contrast_attest::LeafKind;
use contrast_attest::atls::{IssueError, Issuer, SNP_ATTESTATION_OID};
use contrast_attest::collateral::{CertTable, CertTableEntry};
use contrast_attest::evidence::AttestationBuilder;

use crate::TeeError;

/// The configfs-tsm report directory of the kernel.
pub const CONFIGFS_TSM_REPORT_ROOT: &str = "/sys/kernel/config/tsm/report";
/// The SEV guest device.
pub const SEV_GUEST_DEVICE: &str = "/dev/sev-guest";
/// What configfs-tsm's `provider` says on an SEV-SNP guest.
pub const SEV_GUEST_PROVIDER: &str = "sev_guest";
use contrast_attest::report::{Field, REPORT_LEN};

/// The host's certificate table ([`CertTable::parse`], the verifier's parser): none when the
/// host supplied none (an empty `auxblob`, or `/dev/sev-guest`).
fn host_table(auxblob: &[u8]) -> Result<CertTable<'_>, TeeError> {
    if auxblob.is_empty() {
        return Ok(CertTable::default());
    }
    CertTable::parse(auxblob)
        .map_err(|e| TeeError::Snp(format!("the host's certificate table: {e}")))
}

// ---------------------------------------------------------------------------------------------
// configfs-tsm
// ---------------------------------------------------------------------------------------------

/// What one configfs-tsm request returned.
#[derive(Debug)]
struct TsmOutput {
    report: Vec<u8>,
    auxblob: Vec<u8>,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> TeeError + '_ {
    move |source| TeeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn read_generation(entry: &Path) -> Result<u64, TeeError> {
    let path = entry.join("generation");
    let text = std::fs::read_to_string(&path).map_err(io_error(&path))?;
    text.trim().parse().map_err(|_| {
        TeeError::Snp(format!(
            "{}: generation is {:?}, expected a decimal counter",
            path.display(),
            text.trim()
        ))
    })
}

/// Checks `provider` if the kernel exposes it (it names the TSM driver behind the entry).
fn check_provider(entry: &Path) -> Result<(), TeeError> {
    let path = entry.join("provider");
    match std::fs::read_to_string(&path) {
        Ok(provider) if provider.trim() == SEV_GUEST_PROVIDER => Ok(()),
        Ok(provider) => Err(TeeError::Snp(format!(
            "{}: the configfs-tsm provider is {:?}, expected {SEV_GUEST_PROVIDER:?}: this is not an sev-snp guest",
            path.display(),
            provider.trim()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(TeeError::Io { path, source }),
    }
}

/// Writes `inblob` and returns the generation the write produced.
fn write_inblob(entry: &Path, report_data: &[u8; 64]) -> Result<u64, TeeError> {
    check_provider(entry)?;
    let path = entry.join("inblob");
    std::fs::write(&path, report_data).map_err(io_error(&path))?;
    read_generation(entry)
}

/// Reads `outblob` and `auxblob`, then fails if `generation` moved past `written` (another
/// writer changed the request between our write and our reads).
fn read_outputs(entry: &Path, written: u64) -> Result<TsmOutput, TeeError> {
    let outblob = entry.join("outblob");
    let report = std::fs::read(&outblob).map_err(io_error(&outblob))?;
    let auxblob_path = entry.join("auxblob");
    let auxblob = match std::fs::read(&auxblob_path) {
        Ok(bytes) => bytes,
        // Kernels without certificate support have no auxblob: no table.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(source) => {
            return Err(TeeError::Io {
                path: auxblob_path,
                source,
            });
        }
    };
    let now = read_generation(entry)?;
    if now != written {
        return Err(TeeError::Snp(format!(
            "{}: generation changed from {written} to {now} while reading the report: another \
             process wrote to this configfs-tsm entry, so the report may not be ours; retry",
            entry.display()
        )));
    }
    Ok(TsmOutput { report, auxblob })
}

fn configfs_request(entry: &Path, report_data: &[u8; 64]) -> Result<TsmOutput, TeeError> {
    let written = write_inblob(entry, report_data)?;
    read_outputs(entry, written)
}

/// A configfs-tsm entry this process made; removed (best effort) when dropped.
struct OwnedEntry {
    path: PathBuf,
}

impl OwnedEntry {
    fn create(root: &Path) -> Result<Self, TeeError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "contrast-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = root.join(name);
        std::fs::create_dir(&path).map_err(io_error(&path))?;
        Ok(Self { path })
    }
}

impl Drop for OwnedEntry {
    fn drop(&mut self) {
        // configfs removes the attribute files with the directory. A failure only leaks an
        // entry; the report already obtained stays valid.
        let _ = std::fs::remove_dir(&self.path);
    }
}

// ---------------------------------------------------------------------------------------------
// The issuer
// ---------------------------------------------------------------------------------------------

/// Where an [`SnpIssuer`] gets its reports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReportSource {
    /// configfs-tsm: a fresh entry under `root` (normally [`CONFIGFS_TSM_REPORT_ROOT`]) per
    /// report, removed afterwards.
    ConfigfsTsm {
        /// The `tsm/report` directory.
        root: PathBuf,
    },
    /// One existing configfs-tsm entry, reused for every report (requests from this process are
    /// serialised; a concurrent writer from elsewhere is detected by `generation`).
    ConfigfsTsmEntry {
        /// The entry directory.
        entry: PathBuf,
    },
    /// `/dev/sev-guest` (`SNP_GET_REPORT`, no certificate table).
    SevGuestDevice,
}

/// The certificates read from `--snp-certs-dir`.
#[derive(Clone, Debug, Default)]
struct DirCertificates {
    vcek: Option<Vec<u8>>,
    ask: Option<Vec<u8>>,
    ark: Option<Vec<u8>>,
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, TeeError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(TeeError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn pem_certificate(path: &Path, bytes: &[u8]) -> Result<Vec<u8>, TeeError> {
    let text = std::str::from_utf8(bytes).map_err(|_| {
        TeeError::Snp(format!(
            "{}: not a PEM file (not UTF-8); expected a `CERTIFICATE` block",
            path.display()
        ))
    })?;
    let (label, der) = der::pem::decode_vec(text.trim().as_bytes()).map_err(|e| {
        TeeError::Snp(format!(
            "{}: not a PEM `CERTIFICATE` block: {e}",
            path.display()
        ))
    })?;
    if label != "CERTIFICATE" {
        return Err(TeeError::Snp(format!(
            "{}: PEM label is {label:?}, expected \"CERTIFICATE\"",
            path.display()
        )));
    }
    Ok(der)
}

impl DirCertificates {
    fn load(dir: &Path) -> Result<Self, TeeError> {
        if !dir.is_dir() {
            return Err(TeeError::Snp(format!(
                "--snp-certs-dir {}: not a directory",
                dir.display()
            )));
        }
        let vcek_der = dir.join("vcek.der");
        let vcek_pem = dir.join("vcek.pem");
        let vcek = match read_optional(&vcek_der)? {
            Some(der) => Some(der),
            None => read_optional(&vcek_pem)?
                .map(|pem| pem_certificate(&vcek_pem, &pem))
                .transpose()?,
        };
        let pem = |name: &str| -> Result<Option<Vec<u8>>, TeeError> {
            let path = dir.join(name);
            read_optional(&path)?
                .map(|bytes| pem_certificate(&path, &bytes))
                .transpose()
        };
        Ok(Self {
            vcek,
            ask: pem("ask.pem")?,
            ark: pem("ark.pem")?,
        })
    }
}

/// What to do when neither the host's table nor `--snp-certs-dir` has a VCEK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MissingVcek {
    /// Refuse to open, saying where a VCEK can come from.
    Refuse,
    /// Open: the caller fetches one for [`SnpIssuer::chip`] and hands it in with
    /// [`SnpIssuer::supply`] (until then, issuing fails naming the gap).
    Supplied,
}

/// What this machine's reports say about it: what to fetch collateral for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChipInfo {
    /// CHIP_ID (all zero if the guest policy masks it).
    pub chip_id: [u8; 64],
    /// REPORTED_TCB, the raw 8 bytes (their layout depends on the product).
    pub reported_tcb_raw: [u8; 8],
    /// The product the report's CPUID fields name (reports v3 and later), if any.
    pub cpuid_product: Option<contrast_attest::Product>,
}

/// Collateral handed in by the caller ([`SnpIssuer::supply`]), used where the host's table and
/// `--snp-certs-dir` have none. Presented only: the verifier's pinned roots decide.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SuppliedCollateral {
    /// The VCEK for [`SnpIssuer::chip`] (DER).
    pub vcek: Option<Vec<u8>>,
    /// The ASK (DER).
    pub ask: Option<Vec<u8>>,
    /// The ARK (DER).
    pub ark: Option<Vec<u8>>,
    /// The ARK-signed CRL (DER).
    pub crl: Option<Vec<u8>>,
}

/// Issues attestation documents from the SEV-SNP guest interface of the kernel.
#[derive(Debug)]
pub struct SnpIssuer {
    source: ReportSource,
    dir_certificates: DirCertificates,
    chip: ChipInfo,
    supplied: std::sync::RwLock<SuppliedCollateral>,
    /// Serialises requests on a shared configfs-tsm entry.
    entry_lock: Mutex<()>,
}

impl SnpIssuer {
    /// Opens the guest interface: configfs-tsm if [`CONFIGFS_TSM_REPORT_ROOT`] exists, else
    /// `/dev/sev-guest`; `certs_dir` is `--snp-certs-dir`.
    ///
    /// # Errors
    /// [`TeeError::Snp`] if neither interface exists or no VCEK is available (see
    /// [`SnpIssuer::with_source`]); [`TeeError::Io`] naming the file that failed.
    pub fn open(certs_dir: Option<&Path>, missing_vcek: MissingVcek) -> Result<Self, TeeError> {
        let source = if Path::new(CONFIGFS_TSM_REPORT_ROOT).is_dir() {
            ReportSource::ConfigfsTsm {
                root: PathBuf::from(CONFIGFS_TSM_REPORT_ROOT),
            }
        } else if Path::new(SEV_GUEST_DEVICE).exists() {
            ReportSource::SevGuestDevice
        } else {
            return Err(TeeError::Snp(format!(
                "no sev-snp guest interface: neither {CONFIGFS_TSM_REPORT_ROOT} (configfs-tsm: is \
                 configfs mounted?) nor {SEV_GUEST_DEVICE} exists; run inside an sev-snp guest, \
                 or use --tee simulated --sim-dir DIR"
            )));
        };
        Self::with_source(source, certs_dir, missing_vcek)
    }

    /// An issuer over `source`. Makes one probe request (report data all zero) to check the
    /// interface, learn the chip ([`SnpIssuer::chip`]) and whether the host's certificate table
    /// carries the VCEK; if neither it nor `certs_dir` has one, `missing_vcek` decides.
    ///
    /// # Errors
    /// [`TeeError::Snp`] for an unusable interface, a malformed report, certificate table or
    /// certificate file, or no VCEK under [`MissingVcek::Refuse`]; [`TeeError::Io`] naming the
    /// file that failed.
    pub fn with_source(
        source: ReportSource,
        certs_dir: Option<&Path>,
        missing_vcek: MissingVcek,
    ) -> Result<Self, TeeError> {
        let dir_certificates = certs_dir
            .map(DirCertificates::load)
            .transpose()?
            .unwrap_or_default();
        let mut issuer = Self {
            source,
            dir_certificates,
            chip: ChipInfo {
                chip_id: [0; 64],
                reported_tcb_raw: [0; 8],
                cpuid_product: None,
            },
            supplied: std::sync::RwLock::default(),
            entry_lock: Mutex::new(()),
        };
        let (report, auxblob) = match &issuer.source {
            ReportSource::SevGuestDevice => {
                open_device()?;
                (device_report(&[0; 64])?, Vec::new())
            }
            _ => issuer.request(&[0; 64])?,
        };
        let unverified = contrast_attest::UnverifiedReport::from_bytes(&report).map_err(|e| {
            TeeError::Snp(format!("{}: the probe report: {e}", issuer.source_name()))
        })?;
        issuer.chip = ChipInfo {
            chip_id: *unverified.chip_id(),
            reported_tcb_raw: unverified.reported_tcb_raw(),
            cpuid_product: unverified.cpuid_product().ok().flatten(),
        };
        let table = host_table(&auxblob)?;
        if table.get(&CertTableEntry::Vcek.guid()).is_none()
            && table.get(&CertTableEntry::Vlek.guid()).is_none()
            && issuer.dir_certificates.vcek.is_none()
            && missing_vcek == MissingVcek::Refuse
        {
            let tried = match certs_dir {
                Some(dir) => format!("{} has neither vcek.der nor vcek.pem", dir.display()),
                None => "no --snp-certs-dir was given".to_owned(),
            };
            return Err(TeeError::Snp(format!(
                "no vcek: the host supplies no certificates with the report ({}) and {tried}; \
                 provide --snp-certs-dir with this chip's vcek.der (from AMD KDS) and ask.pem, \
                 ark.pem, or let the binary fetch it from the KDS",
                issuer.source_name()
            )));
        }
        Ok(issuer)
    }

    /// The chip and TCB this machine's reports name: what collateral to fetch.
    #[must_use]
    pub fn chip(&self) -> &ChipInfo {
        &self.chip
    }

    /// Hands in collateral for documents whose host table and `--snp-certs-dir` lack it (a
    /// fetched VCEK and CA chain, a fresh CRL); replaces what was supplied before.
    pub fn supply(&self, collateral: SuppliedCollateral) {
        *self
            .supplied
            .write()
            .unwrap_or_else(PoisonError::into_inner) = collateral;
    }

    /// The source this issuer reads reports from.
    #[must_use]
    pub fn source(&self) -> &ReportSource {
        &self.source
    }

    fn source_name(&self) -> String {
        match &self.source {
            ReportSource::ConfigfsTsm { root } => format!("configfs-tsm under {}", root.display()),
            ReportSource::ConfigfsTsmEntry { entry } => {
                format!("configfs-tsm entry {}", entry.display())
            }
            ReportSource::SevGuestDevice => SEV_GUEST_DEVICE.to_owned(),
        }
    }

    /// One raw request: the report and the certificate table bytes (empty if none).
    fn request(&self, report_data: &[u8; 64]) -> Result<(Vec<u8>, Vec<u8>), TeeError> {
        match &self.source {
            ReportSource::ConfigfsTsm { root } => {
                let entry = OwnedEntry::create(root)?;
                let out = configfs_request(&entry.path, report_data)?;
                Ok((out.report, out.auxblob))
            }
            ReportSource::ConfigfsTsmEntry { entry } => {
                let _serialised = self
                    .entry_lock
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                let out = configfs_request(entry, report_data)?;
                Ok((out.report, out.auxblob))
            }
            ReportSource::SevGuestDevice => device_report(report_data).map(|r| (r, Vec::new())),
        }
    }

    /// The document for `report_data`.
    fn document(&self, report_data: &[u8; 64]) -> Result<Vec<u8>, TeeError> {
        let (report, auxblob) = self.request(report_data)?;
        if report.len() != REPORT_LEN {
            return Err(TeeError::Snp(format!(
                "{}: the report is {} bytes, expected {REPORT_LEN}",
                self.source_name(),
                report.len()
            )));
        }
        // A stale or foreign report would fail verification anyway; say why here.
        if report.get(Field::ReportData.range()) != Some(report_data.as_slice()) {
            return Err(TeeError::Snp(format!(
                "{}: the report's REPORT_DATA is not the requested one",
                self.source_name()
            )));
        }
        let table = host_table(&auxblob)?;
        let dir = &self.dir_certificates;
        let supplied = self.supplied.read().unwrap_or_else(PoisonError::into_inner);
        let table_ask = table.get(&CertTableEntry::Ask.guid());
        let ask = table_ask.or(dir.ask.as_deref()).or(supplied.ask.as_deref());
        let (leaf_kind, leaf, intermediate) = match (
            table.get(&CertTableEntry::Vlek.guid()),
            table.get(&CertTableEntry::Vcek.guid()),
            dir.vcek.as_deref().or(supplied.vcek.as_deref()),
        ) {
            (Some(vlek), _, _) => (LeafKind::Vlek, vlek, table_ask),
            (None, Some(vcek), _) | (None, None, Some(vcek)) => (LeafKind::Vcek, vcek, ask),
            (None, None, None) => {
                return Err(TeeError::Snp(format!(
                    "no vcek: {} supplied no certificates, --snp-certs-dir has none and none \
                     was fetched",
                    self.source_name()
                )));
            }
        };
        AttestationBuilder::new(&report)
            .leaf(leaf_kind, leaf)
            .intermediate(intermediate)
            .ark(
                table
                    .get(&CertTableEntry::Ark.guid())
                    .or(dir.ark.as_deref())
                    .or(supplied.ark.as_deref()),
            )
            .crl(
                table
                    .get(&CertTableEntry::Crl.guid())
                    .or(supplied.crl.as_deref()),
            )
            .encode()
            .map_err(|e| TeeError::Snp(format!("encoding the attestation document: {e}")))
    }
}

#[cfg(target_os = "linux")]
fn open_device() -> Result<sev::firmware::guest::Firmware, TeeError> {
    sev::firmware::guest::Firmware::open().map_err(io_error(Path::new(SEV_GUEST_DEVICE)))
}

#[cfg(target_os = "linux")]
fn device_report(report_data: &[u8; 64]) -> Result<Vec<u8>, TeeError> {
    let mut firmware = open_device()?;
    firmware
        .get_report(None, Some(*report_data), None)
        .map_err(|e| TeeError::Snp(format!("{SEV_GUEST_DEVICE}: SNP_GET_REPORT failed: {e}")))
}

#[cfg(not(target_os = "linux"))]
fn open_device() -> Result<(), TeeError> {
    Err(TeeError::Snp(format!(
        "{SEV_GUEST_DEVICE} is only available on linux"
    )))
}

#[cfg(not(target_os = "linux"))]
fn device_report(_report_data: &[u8; 64]) -> Result<Vec<u8>, TeeError> {
    open_device().map(|()| Vec::new())
}

impl Issuer for SnpIssuer {
    fn oid(&self) -> const_oid::ObjectIdentifier {
        SNP_ATTESTATION_OID
    }

    fn issue(&self, report_data: &[u8; 64]) -> Result<Vec<u8>, IssueError> {
        self.document(report_data)
            .map_err(|e| IssueError::Platform {
                reason: e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use contrast_attest::evidence::SnpEvidence;
    use contrast_attest::{Product, TcbVersion};
    use contrast_sim::{SimulatedGuest, SimulatedPlatform};

    use super::*;

    fn table(entries: &[([u8; 16], &[u8])]) -> Vec<u8> {
        CertTable::encode(entries)
    }

    #[test]
    fn no_host_table_is_an_empty_table() {
        assert_eq!(host_table(&[]).unwrap(), CertTable::default());
        assert_eq!(
            host_table(&CertTable::encode(&[])).unwrap(),
            CertTable::default()
        );
        // A malformed one is the verifier's parser's error, said to come from the host.
        let error = host_table(&[0; 5]).unwrap_err().to_string();
        assert!(
            error.contains("the host's certificate table: certificate table of 5 bytes has no terminating all-zero entry"),
            "{error}"
        );
    }

    // -----------------------------------------------------------------------------------------
    // configfs-tsm against a fake entry
    // -----------------------------------------------------------------------------------------

    fn platform() -> &'static SimulatedPlatform {
        static PLATFORM: OnceLock<SimulatedPlatform> = OnceLock::new();
        PLATFORM.get_or_init(|| {
            SimulatedPlatform::generate(
                Product::Milan,
                std::time::SystemTime::now(),
                &mut rand_core::OsRng,
            )
            .unwrap()
        })
    }

    fn guest() -> SimulatedGuest {
        let tcb = TcbVersion {
            fmc: None,
            bootloader: 3,
            tee: 0,
            snp: 8,
            microcode: 209,
        };
        SimulatedGuest::new(Product::Milan, [7; 64], tcb)
    }

    /// A directory laid out like a configfs-tsm entry after the kernel answered.
    fn fake_entry(report: &[u8], auxblob: &[u8], provider: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let entry = dir.path();
        std::fs::write(entry.join("provider"), format!("{provider}\n")).unwrap();
        std::fs::write(entry.join("generation"), "3\n").unwrap();
        std::fs::write(entry.join("outblob"), report).unwrap();
        std::fs::write(entry.join("auxblob"), auxblob).unwrap();
        dir
    }

    fn snp_error(result: Result<SnpIssuer, TeeError>) -> String {
        match result {
            Err(TeeError::Snp(message)) => message,
            other => panic!("expected TeeError::Snp, got {other:?}"),
        }
    }

    #[test]
    fn configfs_report_and_certificate_table_make_a_document() {
        let report_data = [0x5a; 64];
        let evidence = guest().evidence(platform(), &report_data).unwrap();
        let auxblob = table(&[
            (CertTableEntry::Vcek.guid(), &evidence.vcek_der),
            (CertTableEntry::Ask.guid(), &evidence.ask_der),
            (CertTableEntry::Ark.guid(), &evidence.ark_der),
        ]);
        let dir = fake_entry(&evidence.report, &auxblob, "sev_guest");
        let issuer = SnpIssuer::with_source(
            ReportSource::ConfigfsTsmEntry {
                entry: dir.path().to_path_buf(),
            },
            None,
            MissingVcek::Refuse,
        )
        .unwrap();
        assert_eq!(issuer.oid(), SNP_ATTESTATION_OID);

        let bytes = issuer.issue(&report_data).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("inblob")).unwrap(),
            report_data.to_vec()
        );
        let document = SnpEvidence::parse(&bytes).unwrap();
        assert_eq!(document.report().as_slice(), evidence.report.as_slice());
        assert_eq!(document.report_data(), report_data);
        assert_eq!(
            document.leaf(LeafKind::Vcek),
            Some(evidence.vcek_der.as_slice())
        );
        assert_eq!(document.leaf(LeafKind::Vlek), None);
        assert_eq!(document.intermediate(), Some(evidence.ask_der.as_slice()));
        assert_eq!(document.ark(), Some(evidence.ark_der.as_slice()));
        assert_eq!(document.crl(), None);

        // The report in outblob is not for other report data: refused with the reason.
        match issuer.issue(&[0; 64]) {
            Err(IssueError::Platform { reason }) => {
                assert!(
                    reason.contains("REPORT_DATA is not the requested one"),
                    "{reason}"
                );
            }
            other => panic!("expected a platform error, got {other:?}"),
        }
    }

    #[test]
    fn certificates_dir_supplies_the_vcek_when_the_table_is_empty() {
        let report_data = [0x33; 64];
        let evidence = guest().evidence(platform(), &report_data).unwrap();
        let dir = fake_entry(&evidence.report, &[], "sev_guest");
        let entry = ReportSource::ConfigfsTsmEntry {
            entry: dir.path().to_path_buf(),
        };

        let message = snp_error(SnpIssuer::with_source(
            entry.clone(),
            None,
            MissingVcek::Refuse,
        ));
        assert!(message.contains("provide --snp-certs-dir"), "{message}");
        assert!(
            message.contains("no --snp-certs-dir was given"),
            "{message}"
        );

        let certs = tempfile::tempdir().unwrap();
        let empty = snp_error(SnpIssuer::with_source(
            entry.clone(),
            Some(certs.path()),
            MissingVcek::Refuse,
        ));
        assert!(
            empty.contains("has neither vcek.der nor vcek.pem"),
            "{empty}"
        );

        let pem = |der: &[u8]| {
            der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, der).unwrap()
        };
        std::fs::write(certs.path().join("vcek.der"), &evidence.vcek_der).unwrap();
        std::fs::write(certs.path().join("ask.pem"), pem(&evidence.ask_der)).unwrap();
        std::fs::write(certs.path().join("ark.pem"), pem(&evidence.ark_der)).unwrap();
        let issuer =
            SnpIssuer::with_source(entry, Some(certs.path()), MissingVcek::Refuse).unwrap();
        let bytes = issuer.issue(&report_data).unwrap();
        let document = SnpEvidence::parse(&bytes).unwrap();
        assert_eq!(
            document.leaf(LeafKind::Vcek),
            Some(evidence.vcek_der.as_slice())
        );
        assert_eq!(document.intermediate(), Some(evidence.ask_der.as_slice()));
        assert_eq!(document.ark(), Some(evidence.ark_der.as_slice()));

        std::fs::write(certs.path().join("ark.pem"), "not pem").unwrap();
        let bad = snp_error(SnpIssuer::with_source(
            ReportSource::ConfigfsTsmEntry {
                entry: dir.path().to_path_buf(),
            },
            Some(certs.path()),
            MissingVcek::Refuse,
        ));
        assert!(
            bad.contains("ark.pem: not a PEM `CERTIFICATE` block"),
            "{bad}"
        );
    }

    /// Without a VCEK from the host or a directory, the caller may fetch one: the issuer names
    /// the chip and TCB to fetch for, refuses to issue until collateral is supplied, then puts
    /// the supplied VCEK, chain and CRL into the document.
    #[test]
    fn supplied_collateral_fills_what_the_host_lacks() {
        let report_data = [0x44; 64];
        let evidence = guest().evidence(platform(), &report_data).unwrap();
        let dir = fake_entry(&evidence.report, &[], "sev_guest");
        let issuer = SnpIssuer::with_source(
            ReportSource::ConfigfsTsmEntry {
                entry: dir.path().to_path_buf(),
            },
            None,
            MissingVcek::Supplied,
        )
        .unwrap();
        let chip = issuer.chip();
        assert_eq!(chip.chip_id, guest().chip_id);
        assert_eq!(
            chip.reported_tcb_raw,
            guest().reported_tcb.to_bytes(Product::Milan)
        );
        match issuer.issue(&report_data) {
            Err(IssueError::Platform { reason }) => {
                assert!(reason.contains("none was fetched"), "{reason}");
            }
            other => panic!("expected a platform error, got {other:?}"),
        }
        let crl = b"crl bytes are only presented".to_vec();
        issuer.supply(SuppliedCollateral {
            vcek: Some(evidence.vcek_der.clone()),
            ask: Some(evidence.ask_der.clone()),
            ark: Some(evidence.ark_der.clone()),
            crl: Some(crl.clone()),
        });
        let document = SnpEvidence::parse(&issuer.issue(&report_data).unwrap()).unwrap();
        assert_eq!(
            document.leaf(LeafKind::Vcek),
            Some(evidence.vcek_der.as_slice())
        );
        assert_eq!(document.intermediate(), Some(evidence.ask_der.as_slice()));
        assert_eq!(document.ark(), Some(evidence.ark_der.as_slice()));
        assert_eq!(document.crl(), Some(crl.as_slice()));
    }

    #[test]
    fn provider_other_than_sev_guest_is_refused() {
        let dir = fake_entry(&[0; REPORT_LEN], &[], "tdx_guest");
        let message = snp_error(SnpIssuer::with_source(
            ReportSource::ConfigfsTsmEntry {
                entry: dir.path().to_path_buf(),
            },
            None,
            MissingVcek::Refuse,
        ));
        assert!(
            message.contains("the configfs-tsm provider is \"tdx_guest\", expected \"sev_guest\""),
            "{message}"
        );
    }

    #[test]
    fn generation_change_between_write_and_read_is_an_error() {
        let dir = fake_entry(&[0; REPORT_LEN], &[], "sev_guest");
        let written = write_inblob(dir.path(), &[1; 64]).unwrap();
        assert_eq!(written, 3);
        // Another writer's request bumps the counter before we read.
        std::fs::write(dir.path().join("generation"), "4\n").unwrap();
        match read_outputs(dir.path(), written) {
            Err(TeeError::Snp(message)) => assert!(
                message.contains("generation changed from 3 to 4"),
                "{message}"
            ),
            other => panic!("expected TeeError::Snp, got {other:?}"),
        }
        std::fs::write(dir.path().join("generation"), "x\n").unwrap();
        match read_outputs(dir.path(), written) {
            Err(TeeError::Snp(message)) => {
                assert!(message.contains("expected a decimal counter"), "{message}");
            }
            other => panic!("expected TeeError::Snp, got {other:?}"),
        }
    }

    #[test]
    fn missing_entry_files_are_io_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        match SnpIssuer::with_source(
            ReportSource::ConfigfsTsmEntry {
                entry: dir.path().to_path_buf(),
            },
            None,
            MissingVcek::Refuse,
        ) {
            Err(TeeError::Io { path, .. }) => assert_eq!(path, dir.path().join("generation")),
            other => panic!("expected TeeError::Io, got {other:?}"),
        }
        // A fresh-entry source whose root does not exist fails at mkdir.
        let root = dir.path().join("no-such-root");
        match SnpIssuer::with_source(
            ReportSource::ConfigfsTsm { root: root.clone() },
            None,
            MissingVcek::Refuse,
        ) {
            Err(TeeError::Io { path, .. }) => assert!(path.starts_with(&root), "{path:?}"),
            other => panic!("expected TeeError::Io, got {other:?}"),
        }
    }
}
