//! Disk usage, off the scrape path: one pass asks Docker's `GET /system/df` (slow, and it
//! holds a daemon lock other calls wait for: moby#31158, #31719, #32846) and, on the
//! daemon's own machine, measures each container's writable layer from its overlay2 upper
//! directory and its log files without asking dockerd. The collector runs one pass at a
//! time per host, on its own interval and under its own deadline, and publishes the figures
//! into the snapshot; scrapes only read them.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::docker::{Connection, DiskUsageAnswer, DockerError, ErrorKind};
use crate::snapshot::{ContainerDisk, DiskUsage, VolumeDisk};

/// What a pass needs to know of one container.
#[derive(Debug, Clone)]
pub(super) struct DiskTarget {
    pub(super) id: String,
    /// `GraphDriver.Data.UpperDir` (overlay2).
    pub(super) upper_dir: Option<Arc<str>>,
    /// `LogPath` (json-file and local log drivers).
    pub(super) log_path: Option<Arc<str>>,
    /// Image id, for the root filesystem of a container Docker was not asked to size.
    pub(super) image_id: String,
}

/// What one pass found; `Err` when Docker's answer is missing (the local figures alone do
/// not make a pass).
pub(super) struct DiskPass {
    pub(super) took: Duration,
    pub(super) result: Result<DiskUsage, DockerError>,
}

/// What was measured here, without dockerd.
#[derive(Debug, Default)]
struct Local {
    /// Container id -> (writable layer bytes, `major:minor`).
    layers: BTreeMap<String, (u64, String)>,
    /// All log files, bytes; None when none could be read.
    logs: Option<u64>,
}

/// One pass: `/system/df` and, when `local`, the walks, both under `deadline`.
pub(super) async fn disk_pass(
    conn: Arc<Connection>,
    targets: Vec<DiskTarget>,
    local: bool,
    deadline: Duration,
) -> DiskPass {
    let started = Instant::now();
    let images: BTreeMap<String, String> = targets
        .iter()
        .map(|t| (t.id.clone(), t.image_id.clone()))
        .collect();
    let count = targets.len();
    let walks = async {
        if !local {
            return Local::default();
        }
        let until = started + deadline;
        let task = tokio::task::spawn_blocking(move || measure(&targets, until));
        match tokio::time::timeout(deadline, task).await {
            Ok(Ok(found)) => found,
            _ => Local::default(),
        }
    };
    let (found, answer) = if local && conn.df_without_containers() {
        // Docker need not size the containers whose writable layers were measured here:
        // walk first, and leave them out of the df when every one was.
        let found = walks.await;
        let all = found.layers.len() >= count;
        let left = deadline.saturating_sub(started.elapsed());
        (found, conn.system_df(left, !all).await)
    } else {
        tokio::join!(walks, conn.system_df(deadline, true))
    };
    let result = answer.map(|a| usage(&a, found, &images));
    DiskPass {
        took: started.elapsed(),
        result,
    }
}

/// Docker's answer and the local measures as one picture: a writable layer measured here
/// wins over Docker's `SizeRw` (fresher: Docker computes them with the same walk).
fn usage(a: &DiskUsageAnswer, local: Local, images: &BTreeMap<String, String>) -> DiskUsage {
    let image_sizes: BTreeMap<String, u64> = a
        .images()
        .into_iter()
        .filter_map(|i| Some((i.id?, DiskUsageAnswer::known(i.size)?)))
        .collect();
    let mut containers: BTreeMap<String, ContainerDisk> = BTreeMap::new();
    for c in a.containers() {
        let Some(id) = c.id else { continue };
        let (rw, device) = match local.layers.get(&id) {
            Some((bytes, dev)) => (Some(*bytes), Some(dev.clone())),
            None => (DiskUsageAnswer::known(c.size_rw), None),
        };
        containers.insert(
            id,
            ContainerDisk {
                rw,
                root_fs: DiskUsageAnswer::known(c.size_root_fs),
                device,
            },
        );
    }
    // Containers Docker was not asked to size (API >= 1.42 on the local host): the root
    // filesystem is the image's layers and the writable layer, as Docker adds them.
    for (id, (bytes, dev)) in &local.layers {
        let image = images.get(id).and_then(|i| image_sizes.get(i));
        containers
            .entry(id.clone())
            .or_insert_with(|| ContainerDisk {
                rw: Some(*bytes),
                root_fs: image.map(|i| i + bytes),
                device: Some(dev.clone()),
            });
    }
    let mut volumes: Vec<VolumeDisk> = a
        .volumes()
        .into_iter()
        .filter_map(|v| {
            Some(VolumeDisk {
                name: v.name?,
                driver: v.driver.unwrap_or_default(),
                size: DiskUsageAnswer::known(v.usage.as_ref().and_then(|u| u.size)),
                references: DiskUsageAnswer::known(v.usage.as_ref().and_then(|u| u.ref_count)),
            })
        })
        .collect();
    volumes.sort_by(|x, y| x.name.cmp(&y.name));
    DiskUsage {
        at: Some(SystemTime::now()),
        success: true,
        duration: Duration::ZERO,
        containers,
        volumes,
        images: a.images_bytes(),
        build_cache: a.build_cache_bytes(),
        logs: local.logs,
    }
}

/// Walks every container's upper directory and stats its log files, until `until`.
fn measure(targets: &[DiskTarget], until: Instant) -> Local {
    let mut found = Local::default();
    for t in targets {
        if Instant::now() >= until {
            break;
        }
        if let Some(dir) = t.upper_dir.as_deref()
            && let Some(sized) = dir_size(Path::new(dir), until)
        {
            found.layers.insert(t.id.clone(), sized);
        }
        if let Some(log) = t.log_path.as_deref()
            && let Some(bytes) = log_files(Path::new(log))
        {
            *found.logs.get_or_insert(0) += bytes;
        }
    }
    found
}

/// `major:minor` of a device number, as the kernel writes it.
fn device(dev: u64) -> String {
    // glibc's encoding of dev_t.
    let major = ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0000_0fff);
    let minor = ((dev >> 12) & 0xffff_ff00) | (dev & 0x0000_00ff);
    format!("{major}:{minor}")
}

/// Bytes of the files under `dir`, as Docker counts a writable layer (its
/// `directory.Size`): every entry but directories, by apparent size, symbolic links not
/// followed, a file with several hard links once. None when `dir` cannot be read or the
/// deadline passed before the walk ended (a partial sum would be a wrong figure).
pub(crate) fn dir_size(dir: &Path, until: Instant) -> Option<(u64, String)> {
    use std::os::unix::fs::MetadataExt;
    let top = std::fs::symlink_metadata(dir).ok()?;
    if !top.is_dir() {
        return None;
    }
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let mut total: u64 = 0;
    let mut stack: Vec<PathBuf> = vec![dir.to_path_buf()];
    let mut entries: u64 = 0;
    while let Some(d) = stack.pop() {
        let Ok(list) = std::fs::read_dir(&d) else {
            // A directory removed meanwhile, or unreadable: its files are not counted.
            continue;
        };
        for entry in list.flatten() {
            entries += 1;
            if entries.is_multiple_of(1024) && Instant::now() >= until {
                return None;
            }
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
                continue;
            }
            let size = meta.len();
            if size == 0 {
                continue;
            }
            if meta.nlink() > 1 && !seen.insert((meta.dev(), meta.ino())) {
                continue;
            }
            total = total.saturating_add(size);
        }
    }
    Some((total, device(top.dev())))
}

/// Bytes of a container's log file and its rotated siblings (`<file>.1`, `<file>.2.gz`, …).
fn log_files(log: &Path) -> Option<u64> {
    let dir = log.parent()?;
    let name = log.file_name()?.to_str()?;
    let mut total = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let file = entry.file_name();
        let Some(file) = file.to_str() else { continue };
        let rotated = file
            .strip_prefix(name)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'));
        if rotated
            && let Ok(meta) = entry.metadata()
            && meta.is_file()
        {
            *total.get_or_insert(0u64) += meta.len();
        }
    }
    total
}

/// The usage to publish after a pass: its figures, or, when it failed, the last ones
/// marked failed.
pub(super) fn after(previous: Option<&Arc<DiskUsage>>, pass: DiskPass) -> Arc<DiskUsage> {
    match pass.result {
        Ok(mut u) => {
            u.duration = pass.took;
            Arc::new(u)
        }
        Err(e) => {
            if e.kind != ErrorKind::Timeout {
                tracing::warn!(kind = %e.kind, error = %e.message, "disk usage pass failed");
            } else {
                tracing::warn!(took = ?pass.took, "disk usage pass timed out");
            }
            let mut u = previous.map(|p| (**p).clone()).unwrap_or_default();
            u.success = false;
            u.duration = pass.took;
            Arc::new(u)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_counts_files_once_and_follows_no_link() {
        let dir = std::env::temp_dir().join(format!("dockstat-du-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("a/b")).expect("mkdir");
        std::fs::write(dir.join("a/one"), vec![1u8; 1000]).expect("write");
        std::fs::write(dir.join("a/b/two"), vec![1u8; 3000]).expect("write");
        std::fs::hard_link(dir.join("a/b/two"), dir.join("a/two-again")).expect("link");
        // A link to a big file outside: the link itself counts, not its target.
        std::os::unix::fs::symlink("/proc/kcore", dir.join("a/far")).expect("symlink");
        let link_len = std::fs::symlink_metadata(dir.join("a/far"))
            .expect("lstat")
            .len();
        let (bytes, dev) =
            dir_size(&dir, Instant::now() + Duration::from_secs(10)).expect("readable");
        assert_eq!(bytes, 4000 + link_len);
        assert!(dev.contains(':'), "{dev}");
        assert!(
            dir_size(
                &dir.join("missing"),
                Instant::now() + Duration::from_secs(1)
            )
            .is_none()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
