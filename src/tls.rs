//! PEM files into rustls client configurations. Shared by the Docker connections (mutual TLS
//! to a daemon) and the OTLP exporter, so both read certificates the same way and say the
//! same thing about a bad file. Errors name the file.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, ConfigBuilder, RootCertStore, WantsVerifier};

/// Largest PEM file read: a system CA bundle is ~200 KB.
const MAX_PEM_BYTES: u64 = 4 * 1024 * 1024;

/// A PEM file's bytes. Only a regular file is opened: opening a FIFO blocks until someone
/// writes to it, and a device can be endless.
fn read_pem(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let meta = std::fs::metadata(path).map_err(|e| format!("`{}`: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("`{}` is not a regular file", path.display()));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_PEM_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("`{}`: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(format!(
            "`{}` is larger than {} MiB: not a PEM file",
            path.display(),
            MAX_PEM_BYTES >> 20
        ));
    }
    Ok(bytes)
}

/// Every certificate of a PEM file; an error when it cannot be read or holds none.
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = read_pem(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("`{}`: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("`{}` holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

/// The CA certificates of a PEM file as trust roots, with how many of its certificates
/// could not be used; an error when none can.
pub fn roots(path: &Path) -> Result<(RootCertStore, usize), String> {
    let mut roots = RootCertStore::empty();
    let (_, unusable) = roots.add_parsable_certificates(certificates(path)?);
    if roots.is_empty() {
        return Err(format!(
            "`{}` holds no usable CA certificate",
            path.display()
        ));
    }
    Ok((roots, unusable))
}

/// The private key of a PEM file.
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(&read_pem(path)?)
        .map_err(|e| format!("`{}`: {e}", path.display()))
}

/// A client configuration on the ring provider with rustls' safe protocol versions, to be
/// given its roots and (optionally) a client certificate.
pub fn client_builder() -> Result<ConfigBuilder<ClientConfig, WantsVerifier>, rustls::Error> {
    ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
}
