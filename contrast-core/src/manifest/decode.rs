//! Go-compatible manifest decoding.
//!
//! serde_json parses the bytes into a small JSON tree that keeps every object member in order
//! (so repeated keys stay visible); a schema-directed walk then resolves keys to fields the way
//! Go's `encoding/json` does and converts values with Go's type rules, reporting errors with
//! their JSON path.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::{
    GuestPolicy, MAX_MANIFEST_SIZE, MAX_NESTING_DEPTH, Manifest, ManifestError, MinimumTcb,
    PlatformInfo, PolicyEntry, ReferenceValues, Role, SnpReferenceValues, TdxReferenceValues,
    UnknownKey,
};

/// A parsed JSON value that keeps object members as written, duplicates included.
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

/// A JSON number as serde_json classifies it: integers that fit `u64`/`i64`, else `f64`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Number {
    Unsigned(u64),
    Negative(i64),
    Float(f64),
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unsigned(n) => write!(f, "{n}"),
            Self::Negative(n) => write!(f, "{n}"),
            Self::Float(x) => write!(f, "{x:?}"),
        }
    }
}

impl Json {
    fn type_name(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Bool(_) => "boolean",
            Self::Number(_) => "number",
            Self::String(_) => "string",
            Self::Array(_) => "array",
            Self::Object(_) => "object",
        }
    }
}

/// Builds a [`Json`] tree, refusing to nest deeper than [`MAX_NESTING_DEPTH`].
struct JsonSeed<'a> {
    depth: usize,
    too_deep: &'a Cell<bool>,
}

impl JsonSeed<'_> {
    fn nested(&self) -> Result<Self, ()> {
        if self.depth >= MAX_NESTING_DEPTH {
            self.too_deep.set(true);
            return Err(());
        }
        Ok(JsonSeed {
            depth: self.depth + 1,
            too_deep: self.too_deep,
        })
    }
}

impl<'de> DeserializeSeed<'de> for JsonSeed<'_> {
    type Value = Json;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for JsonSeed<'_> {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any json value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Number(Number::Unsigned(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Number(if v >= 0 {
            Number::Unsigned(v.unsigned_abs())
        } else {
            Number::Negative(v)
        }))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json, E> {
        Ok(Json::Number(Number::Float(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        loop {
            let seed = self
                .nested()
                .map_err(|()| de::Error::custom("nesting too deep"))?;
            match seq.next_element_seed(seed)? {
                Some(item) => items.push(item),
                None => break,
            }
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut members = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let seed = self
                .nested()
                .map_err(|()| de::Error::custom("nesting too deep"))?;
            members.push((key, map.next_value_seed(seed)?));
        }
        Ok(Json::Object(members))
    }
}

fn parse_json(raw: &[u8]) -> Result<Json, ManifestError> {
    if raw.len() > MAX_MANIFEST_SIZE {
        return Err(ManifestError::TooLarge {
            size: raw.len(),
            max: MAX_MANIFEST_SIZE,
        });
    }
    std::str::from_utf8(raw).map_err(|e| ManifestError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    let too_deep = Cell::new(false);
    let mut deserializer = serde_json::Deserializer::from_slice(raw);
    let seed = JsonSeed {
        depth: 0,
        too_deep: &too_deep,
    };
    let result = seed.deserialize(&mut deserializer).and_then(|value| {
        deserializer.end()?;
        Ok(value)
    });
    result.map_err(|e| {
        if too_deep.get() {
            ManifestError::TooDeep {
                max: MAX_NESTING_DEPTH,
            }
        } else {
            let (line, column) = (e.line(), e.column());
            let message = e.to_string();
            // serde_json appends the position, which the error already carries.
            let message = message
                .strip_suffix(&format!(" at line {line} column {column}"))
                .map_or_else(|| message.clone(), str::to_owned);
            ManifestError::Syntax {
                line,
                column,
                message,
            }
        }
    })
}

/// Decodes manifest bytes with Go's `encoding/json` rules, and lists the keys Go ignores.
pub(super) fn decode_manifest(raw: &[u8]) -> Result<(Manifest, Vec<UnknownKey>), ManifestError> {
    let json = parse_json(raw)?;
    let manifest = manifest(&json)?;
    Ok((manifest, unknown_keys(&json)))
}

/// Decodes a JSON array of `snp` reference value entries (the manifest's
/// `ReferenceValues.snp`) with the same rules; `null` is an empty list.
pub(super) fn decode_snp_list(raw: &[u8]) -> Result<Vec<SnpReferenceValues>, ManifestError> {
    let json = parse_json(raw)?;
    Ok(list("snp", Some(&json), snp_reference_values)?.unwrap_or_default())
}

// ---- paths ----

fn field_path(parent: &str, field: &str) -> String {
    if parent.is_empty() {
        field.to_owned()
    } else {
        format!("{parent}.{field}")
    }
}

fn index_path(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// `Policies["<key>"]`, with the key written as a JSON string so any key is unambiguous.
pub(super) fn key_path(parent: &str, key: &str) -> String {
    let quoted = serde_json::to_string(key).unwrap_or_else(|_| format!("{key:?}"));
    format!("{parent}[{quoted}]")
}

// ---- Go key matching ----

/// The index of the field of `names` that `key` selects: the exact name first, else Go's
/// case-folded match (`folded_names` are `names` folded).
fn resolve_key(names: &[&'static str], folded_names: &[String], key: &str) -> Option<usize> {
    names.iter().position(|n| *n == key).or_else(|| {
        let folded = crate::gocompat::fold_field_name(key);
        folded_names.iter().position(|n| *n == folded)
    })
}

/// Resolves the members of a JSON object to the struct fields `names` (in order): exact key
/// first, else Go's case-folded match; unknown keys are ignored; `null` counts as absent.
/// `null` for the whole object yields all-absent (Go leaves the struct at its zero value).
fn struct_fields<'a, const N: usize>(
    path: &str,
    value: Option<&'a Json>,
    names: &[&'static str; N],
) -> Result<[Option<&'a Json>; N], ManifestError> {
    let mut out: [Option<&'a Json>; N] = [None; N];
    let members = match value {
        None | Some(Json::Null) => return Ok(out),
        Some(Json::Object(members)) => members,
        Some(other) => {
            return Err(ManifestError::WrongType {
                path: path.to_owned(),
                expected: "object",
                found: other.type_name(),
            });
        }
    };
    let folded_names: Vec<String> = names
        .iter()
        .map(|n| crate::gocompat::fold_field_name(n))
        .collect();
    let mut seen: [Option<&'a str>; N] = [None; N];
    for (key, member) in members {
        let Some(index) = resolve_key(names, &folded_names, key) else {
            continue;
        };
        let (Some(slot), Some(seen_key)) = (out.get_mut(index), seen.get_mut(index)) else {
            continue;
        };
        if let Some(first_key) = *seen_key {
            return Err(ManifestError::DuplicateField {
                path: path.to_owned(),
                field: names.get(index).copied().unwrap_or_default(),
                first_key: first_key.to_owned(),
                second_key: key.clone(),
            });
        }
        *seen_key = Some(key);
        *slot = match member {
            Json::Null => None,
            other => Some(other),
        };
    }
    Ok(out)
}

// ---- scalar conversions (None = absent or null = Go zero value) ----

fn wrong_type(path: &str, expected: &'static str, found: &Json) -> ManifestError {
    ManifestError::WrongType {
        path: path.to_owned(),
        expected,
        found: found.type_name(),
    }
}

fn string(path: &str, value: Option<&Json>) -> Result<String, ManifestError> {
    match value {
        None | Some(Json::Null) => Ok(String::new()),
        Some(Json::String(s)) => Ok(s.clone()),
        Some(other) => Err(wrong_type(path, "string", other)),
    }
}

fn optional_string(path: &str, value: Option<&Json>) -> Result<Option<String>, ManifestError> {
    match value {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(wrong_type(path, "string", other)),
    }
}

fn boolean(path: &str, value: Option<&Json>) -> Result<bool, ManifestError> {
    match value {
        None | Some(Json::Null) => Ok(false),
        Some(Json::Bool(b)) => Ok(*b),
        Some(other) => Err(wrong_type(path, "boolean", other)),
    }
}

/// An unsigned Go integer: the literal must be an integer in range (Go's `ParseUint`, so `3.0`
/// and `1e2` are rejected).
fn unsigned<T: TryFrom<u64> + Default>(
    path: &str,
    value: Option<&Json>,
    go_type: &'static str,
) -> Result<T, ManifestError> {
    match value {
        None | Some(Json::Null) => Ok(T::default()),
        Some(Json::Number(number)) => {
            let invalid = || ManifestError::InvalidInteger {
                path: path.to_owned(),
                expected_type: go_type,
                found: number.to_string(),
            };
            match number {
                Number::Unsigned(n) => T::try_from(*n).map_err(|_| invalid()),
                Number::Negative(_) | Number::Float(_) => Err(invalid()),
            }
        }
        Some(other) => Err(wrong_type(path, "number", other)),
    }
}

/// A signed Go `int` (64-bit).
fn signed(path: &str, value: Option<&Json>) -> Result<i64, ManifestError> {
    match value {
        None | Some(Json::Null) => Ok(0),
        Some(Json::Number(number)) => {
            let invalid = || ManifestError::InvalidInteger {
                path: path.to_owned(),
                expected_type: "int",
                found: number.to_string(),
            };
            match number {
                Number::Unsigned(n) => i64::try_from(*n).map_err(|_| invalid()),
                Number::Negative(n) => Ok(*n),
                Number::Float(_) => Err(invalid()),
            }
        }
        Some(other) => Err(wrong_type(path, "number", other)),
    }
}

/// An SVN: Go decodes it as `float64` and requires 0..=255; we also require a whole number.
fn svn(path: &str, value: Option<&Json>) -> Result<Option<u8>, ManifestError> {
    let number = match value {
        None | Some(Json::Null) => return Ok(None),
        Some(Json::Number(number)) => *number,
        Some(other) => return Err(wrong_type(path, "number", other)),
    };
    let out_of_range = || ManifestError::SvnOutOfRange {
        path: path.to_owned(),
        found: number.to_string(),
    };
    match number {
        Number::Unsigned(n) => u8::try_from(n).map(Some).map_err(|_| out_of_range()),
        Number::Negative(_) => Err(out_of_range()),
        Number::Float(x) => {
            if !(0.0..=255.0).contains(&x) {
                return Err(out_of_range());
            }
            if x.fract() != 0.0 {
                return Err(ManifestError::SvnNotIntegral {
                    path: path.to_owned(),
                    found: number.to_string(),
                });
            }
            // In range and whole, so the conversion is exact.
            Ok(Some(x as u8))
        }
    }
}

// ---- lists ----

/// A Go slice: `None` for absent/`null`, else every element converted (a `null` element is the
/// element type's zero value).
fn list<T>(
    path: &str,
    value: Option<&Json>,
    element: impl Fn(&str, Option<&Json>) -> Result<T, ManifestError>,
) -> Result<Option<Vec<T>>, ManifestError> {
    match value {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| element(&index_path(path, i), Some(item)))
            .collect::<Result<Vec<T>, _>>()
            .map(Some),
        Some(other) => Err(wrong_type(path, "array", other)),
    }
}

fn string_list(path: &str, value: Option<&Json>) -> Result<Option<Vec<String>>, ManifestError> {
    list(path, value, string)
}

/// A Go `[4]string`: missing elements are `""`; more than four are rejected (Go would drop
/// them silently).
fn string_array4(path: &str, value: Option<&Json>) -> Result<[String; 4], ManifestError> {
    let items = string_list(path, value)?.unwrap_or_default();
    if items.len() > 4 {
        return Err(ManifestError::TooManyElements {
            path: path.to_owned(),
            max: 4,
            found: items.len(),
        });
    }
    let mut out: [String; 4] = Default::default();
    for (slot, item) in out.iter_mut().zip(items) {
        *slot = item;
    }
    Ok(out)
}

// ---- structs ----

const MANIFEST_FIELDS: [&str; 6] = [
    "Policies",
    "ReferenceValues",
    "WorkloadOwnerKeyDigests",
    "WorkloadOwnerPubKeys",
    "SeedshareOwnerPubKeys",
    "MinimumAPIVersion",
];

fn manifest(value: &Json) -> Result<Manifest, ManifestError> {
    let [
        policies_v,
        reference_values_v,
        digests,
        pub_keys,
        seedshare_keys,
        api_version,
    ] = struct_fields("", Some(value), &MANIFEST_FIELDS)?;
    Ok(Manifest {
        policies: policies("Policies", policies_v)?,
        reference_values: reference_values("ReferenceValues", reference_values_v)?,
        workload_owner_key_digests: string_list("WorkloadOwnerKeyDigests", digests)?,
        workload_owner_pub_keys: string_list("WorkloadOwnerPubKeys", pub_keys)?,
        seedshare_owner_pub_keys: string_list("SeedshareOwnerPubKeys", seedshare_keys)?,
        minimum_api_version: optional_string("MinimumAPIVersion", api_version)?,
    })
}

fn policies(
    path: &str,
    value: Option<&Json>,
) -> Result<BTreeMap<String, PolicyEntry>, ManifestError> {
    let members = match value {
        None | Some(Json::Null) => return Ok(BTreeMap::new()),
        Some(Json::Object(members)) => members,
        Some(other) => return Err(wrong_type(path, "object", other)),
    };
    let mut out = BTreeMap::new();
    for (key, member) in members {
        let entry = policy_entry(&key_path(path, key), Some(member))?;
        if out.insert(key.clone(), entry).is_some() {
            return Err(ManifestError::DuplicatePolicyKey { key: key.clone() });
        }
    }
    Ok(out)
}

const POLICY_ENTRY_FIELDS: [&str; 3] = ["SANs", "WorkloadSecretID", "Role"];

fn policy_entry(path: &str, value: Option<&Json>) -> Result<PolicyEntry, ManifestError> {
    let [sans, workload_secret_id, role] = struct_fields(path, value, &POLICY_ENTRY_FIELDS)?;
    Ok(PolicyEntry {
        sans: string_list(&field_path(path, "SANs"), sans)?,
        workload_secret_id: string(&field_path(path, "WorkloadSecretID"), workload_secret_id)?,
        role: Role::from_name(&string(&field_path(path, "Role"), role)?),
    })
}

const REFERENCE_VALUES_FIELDS: [&str; 2] = ["snp", "tdx"];

fn reference_values(path: &str, value: Option<&Json>) -> Result<ReferenceValues, ManifestError> {
    let [snp, tdx] = struct_fields(path, value, &REFERENCE_VALUES_FIELDS)?;
    Ok(ReferenceValues {
        snp: list(&field_path(path, "snp"), snp, snp_reference_values)?.unwrap_or_default(),
        tdx: list(&field_path(path, "tdx"), tdx, tdx_reference_values)?.unwrap_or_default(),
    })
}

const SNP_FIELDS: [&str; 10] = [
    "Platform",
    "ProductName",
    "TrustedMeasurement",
    "MinimumTCB",
    "GuestPolicy",
    "PlatformInfo",
    "MinimumMitigationVector",
    "AllowedChipIDs",
    "APEIP",
    "SimulatedARKFingerprint",
];

fn snp_reference_values(
    path: &str,
    value: Option<&Json>,
) -> Result<SnpReferenceValues, ManifestError> {
    let [
        platform,
        product_name,
        trusted_measurement,
        minimum_tcb_v,
        guest_policy_v,
        platform_info_v,
        mitigation_vector,
        chip_ids,
        apeip,
        fingerprint,
    ] = struct_fields(path, value, &SNP_FIELDS)?;
    let at = |field: &str| field_path(path, field);
    Ok(SnpReferenceValues {
        platform: string(&at("Platform"), platform)?,
        product_name: string(&at("ProductName"), product_name)?,
        trusted_measurement: string(&at("TrustedMeasurement"), trusted_measurement)?,
        minimum_tcb: minimum_tcb(&at("MinimumTCB"), minimum_tcb_v)?,
        guest_policy: guest_policy(&at("GuestPolicy"), guest_policy_v)?,
        platform_info: platform_info(&at("PlatformInfo"), platform_info_v)?,
        minimum_mitigation_vector: unsigned(
            &at("MinimumMitigationVector"),
            mitigation_vector,
            "uint64",
        )?,
        allowed_chip_ids: string_list(&at("AllowedChipIDs"), chip_ids)?,
        apeip: optional_string(&at("APEIP"), apeip)?,
        simulated_ark_fingerprint: optional_string(&at("SimulatedARKFingerprint"), fingerprint)?,
    })
}

const MINIMUM_TCB_FIELDS: [&str; 4] = [
    "BootloaderVersion",
    "TEEVersion",
    "SNPVersion",
    "MicrocodeVersion",
];

fn minimum_tcb(path: &str, value: Option<&Json>) -> Result<MinimumTcb, ManifestError> {
    let [bootloader, tee, snp, microcode] = struct_fields(path, value, &MINIMUM_TCB_FIELDS)?;
    let at = |field: &str| field_path(path, field);
    Ok(MinimumTcb {
        bootloader_version: svn(&at("BootloaderVersion"), bootloader)?,
        tee_version: svn(&at("TEEVersion"), tee)?,
        snp_version: svn(&at("SNPVersion"), snp)?,
        microcode_version: svn(&at("MicrocodeVersion"), microcode)?,
    })
}

const GUEST_POLICY_FIELDS: [&str; 11] = [
    "ABIMinor",
    "ABIMajor",
    "SMT",
    "MigrateMA",
    "Debug",
    "SingleSocket",
    "CXLAllowed",
    "MemAES256XTS",
    "RAPLDis",
    "CipherTextHidingDRAM",
    "PageSwapDisable",
];

fn guest_policy(path: &str, value: Option<&Json>) -> Result<GuestPolicy, ManifestError> {
    let [
        abi_minor,
        abi_major,
        smt,
        migrate_ma,
        debug,
        single_socket,
        cxl_allowed,
        mem_aes_256_xts,
        rapl_dis,
        ciphertext_hiding_dram,
        page_swap_disable,
    ] = struct_fields(path, value, &GUEST_POLICY_FIELDS)?;
    let at = |field: &str| field_path(path, field);
    Ok(GuestPolicy {
        abi_minor: unsigned(&at("ABIMinor"), abi_minor, "uint8")?,
        abi_major: unsigned(&at("ABIMajor"), abi_major, "uint8")?,
        smt: boolean(&at("SMT"), smt)?,
        migrate_ma: boolean(&at("MigrateMA"), migrate_ma)?,
        debug: boolean(&at("Debug"), debug)?,
        single_socket: boolean(&at("SingleSocket"), single_socket)?,
        cxl_allowed: boolean(&at("CXLAllowed"), cxl_allowed)?,
        mem_aes_256_xts: boolean(&at("MemAES256XTS"), mem_aes_256_xts)?,
        rapl_dis: boolean(&at("RAPLDis"), rapl_dis)?,
        ciphertext_hiding_dram: boolean(&at("CipherTextHidingDRAM"), ciphertext_hiding_dram)?,
        page_swap_disable: boolean(&at("PageSwapDisable"), page_swap_disable)?,
    })
}

const PLATFORM_INFO_FIELDS: [&str; 7] = [
    "SMTEnabled",
    "TSMEEnabled",
    "ECCEnabled",
    "RAPLDisabled",
    "CiphertextHidingDRAMEnabled",
    "AliasCheckComplete",
    "TIOEnabled",
];

fn platform_info(path: &str, value: Option<&Json>) -> Result<PlatformInfo, ManifestError> {
    let [smt, tsme, ecc, rapl, ciphertext_hiding, alias_check, tio] =
        struct_fields(path, value, &PLATFORM_INFO_FIELDS)?;
    let at = |field: &str| field_path(path, field);
    Ok(PlatformInfo {
        smt_enabled: boolean(&at("SMTEnabled"), smt)?,
        tsme_enabled: boolean(&at("TSMEEnabled"), tsme)?,
        ecc_enabled: boolean(&at("ECCEnabled"), ecc)?,
        rapl_disabled: boolean(&at("RAPLDisabled"), rapl)?,
        ciphertext_hiding_dram_enabled: boolean(
            &at("CiphertextHidingDRAMEnabled"),
            ciphertext_hiding,
        )?,
        alias_check_complete: boolean(&at("AliasCheckComplete"), alias_check)?,
        tio_enabled: boolean(&at("TIOEnabled"), tio)?,
    })
}

const TDX_FIELDS: [&str; 10] = [
    "Platform",
    "MinTCBEvaluationDataNumber",
    "MrTd",
    "MrSeam",
    "Rtmrs",
    "Xfam",
    "AllowedPIIDs",
    "MemoryIntegrity",
    "SMTDisabled",
    "StaticPlatform",
];

fn tdx_reference_values(
    path: &str,
    value: Option<&Json>,
) -> Result<TdxReferenceValues, ManifestError> {
    let [
        platform,
        min_tcb_evaluation_data_number,
        mr_td,
        mr_seam,
        rtmrs,
        xfam,
        allowed_piids,
        memory_integrity,
        smt_disabled,
        static_platform,
    ] = struct_fields(path, value, &TDX_FIELDS)?;
    let at = |field: &str| field_path(path, field);
    Ok(TdxReferenceValues {
        platform: string(&at("Platform"), platform)?,
        min_tcb_evaluation_data_number: signed(
            &at("MinTCBEvaluationDataNumber"),
            min_tcb_evaluation_data_number,
        )?,
        mr_td: string(&at("MrTd"), mr_td)?,
        mr_seam: string(&at("MrSeam"), mr_seam)?,
        rtmrs: string_array4(&at("Rtmrs"), rtmrs)?,
        xfam: string(&at("Xfam"), xfam)?,
        allowed_piids: string_list(&at("AllowedPIIDs"), allowed_piids)?,
        memory_integrity: boolean(&at("MemoryIntegrity"), memory_integrity)?,
        smt_disabled: boolean(&at("SMTDisabled"), smt_disabled)?,
        static_platform: boolean(&at("StaticPlatform"), static_platform)?,
    })
}

// ---- unknown keys ----

/// Every key that selects no field, at every level of the schema, in document order. Runs on a
/// tree that [`manifest`] decoded, and is as lenient: a value of an unexpected shape has no
/// unknown keys (the decoder reports it).
fn unknown_keys(json: &Json) -> Vec<UnknownKey> {
    let mut out = Vec::new();
    let [policies_v, reference_values_v, ..] =
        known_members("", Some(json), &MANIFEST_FIELDS, &mut out);
    if let Some(Json::Object(entries)) = policies_v {
        for (key, entry) in entries {
            known_members(
                &key_path("Policies", key),
                Some(entry),
                &POLICY_ENTRY_FIELDS,
                &mut out,
            );
        }
    }
    let [snp, tdx] = known_members(
        "ReferenceValues",
        reference_values_v,
        &REFERENCE_VALUES_FIELDS,
        &mut out,
    );
    for (index, entry) in elements(snp).iter().enumerate() {
        let path = index_path("ReferenceValues.snp", index);
        let [_, _, _, tcb, guest_policy_v, platform_info_v, ..] =
            known_members(&path, Some(entry), &SNP_FIELDS, &mut out);
        for (field, value, names) in [
            ("MinimumTCB", tcb, &MINIMUM_TCB_FIELDS[..]),
            ("GuestPolicy", guest_policy_v, &GUEST_POLICY_FIELDS[..]),
            ("PlatformInfo", platform_info_v, &PLATFORM_INFO_FIELDS[..]),
        ] {
            unknown_members(&field_path(&path, field), value, names, &mut out);
        }
    }
    for (index, entry) in elements(tdx).iter().enumerate() {
        let path = index_path("ReferenceValues.tdx", index);
        unknown_members(&path, Some(entry), &TDX_FIELDS, &mut out);
    }
    out
}

/// The elements of an array value (none for anything else).
fn elements(value: Option<&Json>) -> &[Json] {
    match value {
        Some(Json::Array(items)) => items,
        _ => &[],
    }
}

/// Records the keys of the object `value` that select none of `names`; returns the members
/// that do, by field (the first one of each; `null` counts as absent).
fn known_members<'a, const N: usize>(
    path: &str,
    value: Option<&'a Json>,
    names: &[&'static str; N],
    out: &mut Vec<UnknownKey>,
) -> [Option<&'a Json>; N] {
    let mut known: [Option<&'a Json>; N] = [None; N];
    for (index, member) in unknown_members(path, value, names, out) {
        if let Some(slot) = known.get_mut(index)
            && slot.is_none()
            && !matches!(member, Json::Null)
        {
            *slot = Some(member);
        }
    }
    known
}

/// Records the keys of the object `value` that select none of `names`, and returns the others
/// with the index of their field.
fn unknown_members<'a>(
    path: &str,
    value: Option<&'a Json>,
    names: &[&'static str],
    out: &mut Vec<UnknownKey>,
) -> Vec<(usize, &'a Json)> {
    let Some(Json::Object(members)) = value else {
        return Vec::new();
    };
    let folded_names: Vec<String> = names
        .iter()
        .map(|n| crate::gocompat::fold_field_name(n))
        .collect();
    let mut known = Vec::new();
    for (key, member) in members {
        match resolve_key(names, &folded_names, key) {
            Some(index) => known.push((index, member)),
            None => out.push(UnknownKey {
                object_path: path.to_owned(),
                key: key.clone(),
                nearest: nearest_field(key, names),
            }),
        }
    }
    known
}

/// The field of `names` nearest to `key` by edit distance, ignoring case as Go's matching does,
/// when it is near enough to be a likely typo: at most 2 edits, or a third of the name.
fn nearest_field(key: &str, names: &[&'static str]) -> Option<&'static str> {
    let key: Vec<char> = key.chars().map(|c| c.to_ascii_lowercase()).collect();
    names
        .iter()
        .filter_map(|name| {
            let limit = (name.len() / 3).max(2);
            // The distance is at least the difference in length: skip the work (a key may be
            // megabytes long).
            if key.len().abs_diff(name.len()) > limit {
                return None;
            }
            let name_chars: Vec<char> = name.chars().map(|c| c.to_ascii_lowercase()).collect();
            let distance = crate::edit_distance::of_chars(&key, &name_chars);
            (distance <= limit).then_some((distance, *name))
        })
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_field_ignores_case_and_far_keys() {
        assert_eq!(
            nearest_field("workloadownerpubkey", &MANIFEST_FIELDS),
            Some("WorkloadOwnerPubKeys")
        );
        assert_eq!(nearest_field("Polices", &MANIFEST_FIELDS), Some("Policies"));
        assert_eq!(nearest_field("Comment", &MANIFEST_FIELDS), None);
        assert_eq!(nearest_field(&"x".repeat(1 << 20), &MANIFEST_FIELDS), None);
        assert_eq!(nearest_field("spn", &REFERENCE_VALUES_FIELDS), Some("snp"));
    }

    #[test]
    fn keeps_duplicate_members_in_the_tree() {
        let json = parse_json(br#"{"a": 1, "a": 2}"#).unwrap();
        let Json::Object(members) = json else {
            panic!("not an object")
        };
        assert_eq!(members.len(), 2);
    }

    #[test]
    fn depth_limit_is_exact() {
        let ok = format!(
            "{}{}",
            "[".repeat(MAX_NESTING_DEPTH),
            "]".repeat(MAX_NESTING_DEPTH)
        );
        assert!(parse_json(ok.as_bytes()).is_ok());
        let deep = format!(
            "{}{}",
            "[".repeat(MAX_NESTING_DEPTH + 1),
            "]".repeat(MAX_NESTING_DEPTH + 1)
        );
        assert_eq!(
            parse_json(deep.as_bytes()),
            Err(ManifestError::TooDeep {
                max: MAX_NESTING_DEPTH
            })
        );
    }

    #[test]
    fn svn_conversion_follows_go_float_rules() {
        let n = |x: Number| Json::Number(x);
        assert_eq!(svn("p", Some(&n(Number::Float(3.0)))), Ok(Some(3)));
        assert_eq!(svn("p", Some(&n(Number::Float(255.0)))), Ok(Some(255)));
        assert_eq!(svn("p", Some(&n(Number::Float(-0.0)))), Ok(Some(0)));
        assert!(matches!(
            svn("p", Some(&n(Number::Float(3.5)))),
            Err(ManifestError::SvnNotIntegral { .. })
        ));
        assert!(matches!(
            svn("p", Some(&n(Number::Float(255.5)))),
            Err(ManifestError::SvnOutOfRange { .. })
        ));
        assert!(matches!(
            svn("p", Some(&n(Number::Negative(-1)))),
            Err(ManifestError::SvnOutOfRange { .. })
        ));
    }
}
