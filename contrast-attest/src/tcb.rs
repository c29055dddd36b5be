//! `TCB_VERSION`: the security patch levels (SPLs) of the platform's firmware components.
//!
//! The 8-byte field (CURRENT_TCB, REPORTED_TCB, COMMITTED_TCB, LAUNCH_TCB in the report; the
//! `*SPL` extensions of a VCEK) has one layout per generation (byte 0 is the lowest address):
//!
//! | byte | Milan / Genoa | Turin |
//! |---|---|---|
//! | 0 | BOOT_LOADER | FMC |
//! | 1 | TEE | BOOT_LOADER |
//! | 2 | reserved | TEE |
//! | 3 | reserved | SNP |
//! | 4 | reserved | reserved |
//! | 5 | reserved | reserved |
//! | 6 | SNP | reserved |
//! | 7 | MICROCODE | MICROCODE |
//!
//! TCB values are compared component by component, never as one integer.

use std::fmt;

use crate::Product;

/// One component of a [`TcbVersion`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TcbComponent {
    /// The FMC (first mutable code) SPL, Turin only.
    Fmc,
    /// The boot loader SPL.
    Bootloader,
    /// The TEE (PSP OS) SPL.
    Tee,
    /// The SNP firmware SPL.
    Snp,
    /// The CPU microcode SPL.
    Microcode,
}

impl fmt::Display for TcbComponent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Fmc => "fmc",
            Self::Bootloader => "bootloader",
            Self::Tee => "tee",
            Self::Snp => "snp",
            Self::Microcode => "microcode",
        })
    }
}

/// A decoded `TCB_VERSION`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct TcbVersion {
    /// FMC SPL: `Some` on Turin, `None` on Milan and Genoa (which have no FMC).
    pub fmc: Option<u8>,
    /// Boot loader SPL.
    pub bootloader: u8,
    /// TEE SPL.
    pub tee: u8,
    /// SNP firmware SPL.
    pub snp: u8,
    /// Microcode SPL.
    pub microcode: u8,
}

/// Byte offsets within the 8-byte field that are reserved for a generation.
#[must_use]
pub(crate) const fn reserved_byte_indices(product: Product) -> &'static [usize] {
    match product {
        Product::Milan | Product::Genoa => &[2, 3, 4, 5],
        Product::Turin => &[4, 5, 6],
    }
}

impl TcbVersion {
    /// Decodes the 8 raw bytes with the layout of `product`. Reserved bytes are ignored here;
    /// [`crate::report::check_structure`] requires them to be zero.
    #[must_use]
    pub const fn from_bytes(raw: &[u8; 8], product: Product) -> Self {
        match product {
            Product::Milan | Product::Genoa => Self {
                fmc: None,
                bootloader: raw[0],
                tee: raw[1],
                snp: raw[6],
                microcode: raw[7],
            },
            Product::Turin => Self {
                fmc: Some(raw[0]),
                bootloader: raw[1],
                tee: raw[2],
                snp: raw[3],
                microcode: raw[7],
            },
        }
    }

    /// Encodes with the layout of `product` (reserved bytes zero; `fmc` is ignored on Milan and
    /// Genoa and taken as 0 when `None` on Turin).
    #[must_use]
    pub const fn to_bytes(&self, product: Product) -> [u8; 8] {
        match product {
            Product::Milan | Product::Genoa => [
                self.bootloader,
                self.tee,
                0,
                0,
                0,
                0,
                self.snp,
                self.microcode,
            ],
            Product::Turin => {
                let fmc = match self.fmc {
                    Some(fmc) => fmc,
                    None => 0,
                };
                [
                    fmc,
                    self.bootloader,
                    self.tee,
                    self.snp,
                    0,
                    0,
                    0,
                    self.microcode,
                ]
            }
        }
    }

    /// Parses the dotted form flags use: `BOOTLOADER.TEE.SNP.MICROCODE` on Milan and Genoa,
    /// `FMC.BOOTLOADER.TEE.SNP.MICROCODE` on Turin, each a number 0-255 (e.g. `4.0.23.213`).
    ///
    /// # Errors
    /// A message naming the expected form.
    pub fn parse_dotted(text: &str, product: Product) -> Result<Self, String> {
        let numbers: Result<Vec<u8>, _> = text.trim().split('.').map(str::parse::<u8>).collect();
        match (product, numbers.as_deref()) {
            (Product::Milan | Product::Genoa, Ok([bootloader, tee, snp, microcode])) => Ok(Self {
                fmc: None,
                bootloader: *bootloader,
                tee: *tee,
                snp: *snp,
                microcode: *microcode,
            }),
            (Product::Turin, Ok([fmc, bootloader, tee, snp, microcode])) => Ok(Self {
                fmc: Some(*fmc),
                bootloader: *bootloader,
                tee: *tee,
                snp: *snp,
                microcode: *microcode,
            }),
            (Product::Turin, _) => Err(format!(
                "{text:?} is not FMC.BOOTLOADER.TEE.SNP.MICROCODE (five numbers 0-255, e.g. \
                 1.4.0.23.213; Turin has an FMC)"
            )),
            (_, _) => Err(format!(
                "{text:?} is not BOOTLOADER.TEE.SNP.MICROCODE (four numbers 0-255, e.g. 4.0.23.213)"
            )),
        }
    }

    /// The dotted form [`TcbVersion::parse_dotted`] reads: `FMC.` (when present), then
    /// `BOOTLOADER.TEE.SNP.MICROCODE`.
    #[must_use]
    pub fn to_dotted(&self) -> String {
        self.components()
            .iter()
            .map(|(_, value)| value.to_string())
            .collect::<Vec<_>>()
            .join(".")
    }

    /// The components present in this value, in a fixed order (fmc first when present), with
    /// their values.
    #[must_use]
    pub fn components(&self) -> Vec<(TcbComponent, u8)> {
        let mut out = Vec::with_capacity(5);
        if let Some(fmc) = self.fmc {
            out.push((TcbComponent::Fmc, fmc));
        }
        out.extend([
            (TcbComponent::Bootloader, self.bootloader),
            (TcbComponent::Tee, self.tee),
            (TcbComponent::Snp, self.snp),
            (TcbComponent::Microcode, self.microcode),
        ]);
        out
    }

    /// True if every component of `self` is at most the same component of `other`
    /// (a missing FMC counts as 0).
    #[must_use]
    pub fn is_component_wise_at_most(&self, other: &Self) -> bool {
        self.fmc.unwrap_or(0) <= other.fmc.unwrap_or(0)
            && self.bootloader <= other.bootloader
            && self.tee <= other.tee
            && self.snp <= other.snp
            && self.microcode <= other.microcode
    }
}

impl fmt::Display for TcbVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(fmc) = self.fmc {
            write!(f, "fmc {fmc}, ")?;
        }
        write!(
            f,
            "bootloader {}, tee {}, snp {}, microcode {}",
            self.bootloader, self.tee, self.snp, self.microcode
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_tcb_parses_per_product() {
        assert_eq!(
            TcbVersion::parse_dotted("4.0.23.213", Product::Milan),
            Ok(TcbVersion {
                fmc: None,
                bootloader: 4,
                tee: 0,
                snp: 23,
                microcode: 213
            })
        );
        assert_eq!(
            TcbVersion::parse_dotted("1.4.0.23.213", Product::Turin).map(|t| t.fmc),
            Ok(Some(1))
        );
        for (text, product) in [
            ("4.0.23.213", Product::Milan),
            ("1.4.0.23.213", Product::Turin),
        ] {
            let tcb = TcbVersion::parse_dotted(text, product).unwrap();
            assert_eq!(tcb.to_dotted(), text);
        }
        for (text, product) in [
            ("4.0.23", Product::Genoa),
            ("4.0.23.256", Product::Milan),
            ("1.4.0.23.213", Product::Milan),
            ("4.0.23.213", Product::Turin),
            ("a.b.c.d", Product::Milan),
        ] {
            let error = TcbVersion::parse_dotted(text, product).unwrap_err();
            assert!(error.contains("BOOTLOADER.TEE.SNP.MICROCODE"), "{error}");
        }
    }

    #[test]
    fn milan_layout() {
        let raw = [0x03, 0, 0, 0, 0, 0, 0x08, 0x73];
        let tcb = TcbVersion::from_bytes(&raw, Product::Milan);
        assert_eq!(
            tcb,
            TcbVersion {
                fmc: None,
                bootloader: 3,
                tee: 0,
                snp: 8,
                microcode: 115
            }
        );
        assert_eq!(tcb.to_bytes(Product::Milan), raw);
    }

    #[test]
    fn turin_layout() {
        let raw = [1, 2, 3, 4, 0, 0, 0, 9];
        let tcb = TcbVersion::from_bytes(&raw, Product::Turin);
        assert_eq!(
            tcb,
            TcbVersion {
                fmc: Some(1),
                bootloader: 2,
                tee: 3,
                snp: 4,
                microcode: 9
            }
        );
        assert_eq!(tcb.to_bytes(Product::Turin), raw);
    }

    #[test]
    fn component_wise_order() {
        let low = TcbVersion {
            fmc: None,
            bootloader: 3,
            tee: 0,
            snp: 8,
            microcode: 115,
        };
        let high = TcbVersion {
            microcode: 206,
            ..low
        };
        assert!(low.is_component_wise_at_most(&high));
        assert!(!high.is_component_wise_at_most(&low));
        let mixed = TcbVersion {
            bootloader: 4,
            microcode: 100,
            ..low
        };
        assert!(!mixed.is_component_wise_at_most(&high));
        assert!(!high.is_component_wise_at_most(&mixed));
    }
}
