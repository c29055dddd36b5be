//! Keeping an SEV-SNP issuer supplied with collateral from the KDS (through `contrast-kds`: the
//! on-disk cache, a collateral proxy, AMD's KDS), so its documents carry the VCEK, the CA chain
//! and a fresh CRL and verifiers can require the CRL.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use contrast_attest::chain::{LeafKind, TrustAnchor};
use contrast_attest::collateral::CollateralRequest;
use contrast_attest::{Product, TcbVersion, UnixTime};
use contrast_kds::{Collateral, CollateralClient, KdsError};

use crate::snp::{SnpIssuer, SuppliedCollateral};

/// After a failed fetch, the next try comes this much later.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);
/// Collateral is fetched again (from the cache while it is fresh) at least this often.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(60 * 60);
/// A CRL is replaced this long before its nextUpdate.
pub const CRL_MARGIN: Duration = Duration::from_secs(60 * 60);

/// Fetches the collateral of one SNP issuer's chip and hands it to the issuer, again and again
/// ([`CollateralFeed::run`]).
#[derive(Debug)]
pub struct CollateralFeed {
    issuer: Arc<SnpIssuer>,
    client: CollateralClient,
    anchor: TrustAnchor,
    product: Product,
    chip_id: [u8; 64],
    tcb: TcbVersion,
}

impl CollateralFeed {
    /// A feed for `issuer`'s chip and TCB ([`SnpIssuer::chip`]) of `product`, verified against
    /// `anchor` (AMD's root for `product` on hardware).
    #[must_use]
    pub fn new(
        issuer: Arc<SnpIssuer>,
        client: CollateralClient,
        anchor: TrustAnchor,
        product: Product,
    ) -> Self {
        let chip = *issuer.chip();
        Self {
            issuer,
            client,
            anchor,
            product,
            chip_id: chip.chip_id,
            tcb: TcbVersion::from_bytes(&chip.reported_tcb_raw, product),
        }
    }

    /// Fetches once and supplies the issuer.
    ///
    /// # Errors
    /// The client's [`KdsError`], every attempt named.
    pub async fn refresh(&self) -> Result<Collateral, KdsError> {
        let request = CollateralRequest::new(self.product, LeafKind::Vcek, &self.chip_id, self.tcb);
        let collateral = self
            .client
            .vcek_collateral(&request, &self.anchor, UnixTime::from(SystemTime::now()))
            .await?;
        self.issuer.supply(SuppliedCollateral {
            vcek: Some(collateral.vcek.clone()),
            ask: Some(collateral.ask.clone()),
            ark: Some(collateral.ark.clone()),
            crl: Some(collateral.crl.clone()),
        });
        Ok(collateral)
    }

    /// Refreshes forever: after a failure (logged with every attempt) in
    /// [`RETRY_AFTER_FAILURE`], otherwise every [`REFRESH_INTERVAL`] or [`CRL_MARGIN`] before
    /// the CRL's nextUpdate, whichever is sooner. Spawn it; it ends when dropped.
    pub async fn run(self) {
        loop {
            let wait = match self.refresh().await {
                Ok(collateral) => {
                    let now = UnixTime::from(SystemTime::now()).secs();
                    let until_stale = collateral
                        .crl_info
                        .next_update
                        .secs()
                        .saturating_sub(now)
                        .saturating_sub(CRL_MARGIN.as_secs());
                    tracing::info!(
                        vcek_from = %collateral.origins.vcek,
                        crl_from = %collateral.origins.crl,
                        crl_next_update = %collateral.crl_info.next_update,
                        "sev-snp collateral supplied"
                    );
                    REFRESH_INTERVAL.min(Duration::from_secs(until_stale.max(60)))
                }
                Err(error) => {
                    tracing::warn!(%error, retry_in = ?RETRY_AFTER_FAILURE, "cannot get the sev-snp collateral (VCEK, CA chain, CRL)");
                    RETRY_AFTER_FAILURE
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
}
