//! Go-compatible manifest output: `json.MarshalIndent(m, "", "  ")` plus a trailing newline
//! (see [`crate::gocompat::marshal_indent`]).

use super::{Manifest, ManifestError};

pub(super) fn to_go_json(manifest: &Manifest) -> Result<Vec<u8>, ManifestError> {
    let mut out = crate::gocompat::marshal_indent(manifest).map_err(|e| ManifestError::Encode {
        message: e.to_string(),
    })?;
    // `contrast generate` ends the file with a newline after Go's output.
    out.push(b'\n');
    Ok(out)
}
