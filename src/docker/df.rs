//! `GET /system/df`: what Docker says the host's containers, images, volumes and build
//! cache take on disk. Two shapes exist: up to API 1.51 flat lists (`LayersSize`,
//! `Images`, `Containers`, `Volumes`, `BuildCache`); from 1.52 one object per kind
//! (`ImageUsage`, …) holding a total and, with `verbose`, the `Items`. Both are read into
//! [`DiskUsageAnswer`]; every field is optional.

use serde::Deserialize;

/// One container of the answer.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DfContainer {
    /// Full id.
    #[serde(rename = "Id")]
    pub id: Option<String>,
    /// Image id.
    #[serde(rename = "ImageID")]
    pub image_id: Option<String>,
    /// Writable layer, bytes.
    #[serde(rename = "SizeRw")]
    pub size_rw: Option<i64>,
    /// Every file of the root filesystem (image layers and writable layer), bytes.
    #[serde(rename = "SizeRootFs")]
    pub size_root_fs: Option<i64>,
}

/// One image of the answer.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DfImage {
    /// Image id.
    #[serde(rename = "Id")]
    pub id: Option<String>,
    /// All its layers, bytes.
    #[serde(rename = "Size")]
    pub size: Option<i64>,
    /// Of which shared with other images.
    #[serde(rename = "SharedSize")]
    pub shared_size: Option<i64>,
}

/// A volume's usage.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DfVolumeUsage {
    /// Bytes; -1 when not available (drivers other than `local`).
    #[serde(rename = "Size")]
    pub size: Option<i64>,
    /// Containers referencing it; -1 when not available.
    #[serde(rename = "RefCount")]
    pub ref_count: Option<i64>,
}

/// One volume of the answer.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DfVolume {
    /// Name.
    #[serde(rename = "Name")]
    pub name: Option<String>,
    /// Driver (`local`, …).
    #[serde(rename = "Driver")]
    pub driver: Option<String>,
    /// Usage.
    #[serde(rename = "UsageData")]
    pub usage: Option<DfVolumeUsage>,
}

/// One build cache record of the answer.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DfBuildCache {
    /// Bytes.
    #[serde(rename = "Size")]
    pub size: Option<i64>,
    /// Shared with another record (counted there).
    #[serde(rename = "Shared")]
    pub shared: Option<bool>,
}

/// The API 1.52 form of one kind: a total and the items.
#[derive(Debug, Clone, Deserialize)]
pub struct DfKind<T> {
    /// Bytes of the kind as a whole.
    #[serde(rename = "TotalSize")]
    pub total_size: Option<i64>,
    /// The items (with `verbose`).
    #[serde(rename = "Items")]
    pub items: Option<Vec<T>>,
}

/// The answer of `GET /system/df`, in either shape.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DiskUsageAnswer {
    /// All image layers on disk, bytes (up to API 1.51).
    #[serde(rename = "LayersSize")]
    pub layers_size: Option<i64>,
    /// Images (up to API 1.51).
    #[serde(rename = "Images")]
    pub images: Option<Vec<DfImage>>,
    /// Containers (up to API 1.51).
    #[serde(rename = "Containers")]
    pub containers: Option<Vec<DfContainer>>,
    /// Volumes (up to API 1.51).
    #[serde(rename = "Volumes")]
    pub volumes: Option<Vec<DfVolume>>,
    /// Build cache (up to API 1.51).
    #[serde(rename = "BuildCache")]
    pub build_cache: Option<Vec<DfBuildCache>>,
    /// The classic builder's cache, bytes (up to API 1.51; `BuildCache` is null without
    /// BuildKit).
    #[serde(rename = "BuilderSize")]
    pub builder_size: Option<i64>,
    /// Images (API 1.52).
    #[serde(rename = "ImageUsage")]
    pub image_usage: Option<DfKind<DfImage>>,
    /// Containers (API 1.52).
    #[serde(rename = "ContainerUsage")]
    pub container_usage: Option<DfKind<DfContainer>>,
    /// Volumes (API 1.52).
    #[serde(rename = "VolumeUsage")]
    pub volume_usage: Option<DfKind<DfVolume>>,
    /// Build cache (API 1.52).
    #[serde(rename = "BuildCacheUsage")]
    pub build_cache_usage: Option<DfKind<DfBuildCache>>,
}

fn items<T: Clone>(flat: &Option<Vec<T>>, kind: &Option<DfKind<T>>) -> Vec<T> {
    flat.clone()
        .or_else(|| kind.as_ref().and_then(|k| k.items.clone()))
        .unwrap_or_default()
}

fn bytes(v: Option<i64>) -> Option<u64> {
    v.and_then(|v| u64::try_from(v).ok())
}

impl DiskUsageAnswer {
    /// Containers, whichever the shape.
    pub fn containers(&self) -> Vec<DfContainer> {
        items(&self.containers, &self.container_usage)
    }

    /// Images, whichever the shape.
    pub fn images(&self) -> Vec<DfImage> {
        items(&self.images, &self.image_usage)
    }

    /// Volumes, whichever the shape.
    pub fn volumes(&self) -> Vec<DfVolume> {
        items(&self.volumes, &self.volume_usage)
    }

    /// Image layers on disk, as `docker system df` shows them: `LayersSize`, or the 1.52
    /// total.
    pub fn images_bytes(&self) -> Option<u64> {
        bytes(self.layers_size).or_else(|| bytes(self.image_usage.as_ref()?.total_size))
    }

    /// Build cache on disk, as `docker system df` counts it: BuildKit's records not shared,
    /// else the classic builder's `BuilderSize`, or the 1.52 total. None when the answer
    /// says nothing of it.
    pub fn build_cache_bytes(&self) -> Option<u64> {
        if let Some(records) = &self.build_cache {
            return Some(
                records
                    .iter()
                    .filter(|r| r.shared != Some(true))
                    .filter_map(|r| bytes(r.size))
                    .sum(),
            );
        }
        bytes(self.builder_size).or_else(|| bytes(self.build_cache_usage.as_ref()?.total_size))
    }

    /// A volume's size or reference count as Docker gives it: None for its "not available".
    pub fn known(v: Option<i64>) -> Option<u64> {
        bytes(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_shapes_are_read() {
        let old = r#"{"LayersSize":1000,"Images":[{"Id":"sha256:a","Size":700,"SharedSize":0}],
            "Containers":[{"Id":"c1","ImageID":"sha256:a","SizeRw":5,"SizeRootFs":705}],
            "Volumes":[{"Name":"v","Driver":"local","UsageData":{"Size":20,"RefCount":1}},
                       {"Name":"w","Driver":"nfs","UsageData":{"Size":-1,"RefCount":-1}}],
            "BuildCache":[{"Size":10,"Shared":false},{"Size":4,"Shared":true}]}"#;
        let a: DiskUsageAnswer = serde_json::from_str(old).expect("decodes");
        assert_eq!(a.images_bytes(), Some(1000));
        assert_eq!(a.build_cache_bytes(), Some(10));
        assert_eq!(a.containers()[0].size_rw, Some(5));
        let vols = a.volumes();
        assert_eq!(vols.len(), 2);
        assert_eq!(
            DiskUsageAnswer::known(vols[1].usage.as_ref().and_then(|u| u.size)),
            None
        );

        let new = r#"{"ImageUsage":{"TotalSize":900,"Items":[]},
            "ContainerUsage":{"TotalSize":5,"Items":[{"Id":"c1","SizeRw":5,"SizeRootFs":705}]},
            "VolumeUsage":{"TotalSize":20,"Items":[{"Name":"v","Driver":"local","UsageData":{"Size":20,"RefCount":1}}]},
            "BuildCacheUsage":{"TotalSize":10}}"#;
        let a: DiskUsageAnswer = serde_json::from_str(new).expect("decodes");
        let classic: DiskUsageAnswer =
            serde_json::from_str(r#"{"LayersSize":1,"BuildCache":null,"BuilderSize":0}"#)
                .expect("decodes");
        assert_eq!(classic.build_cache_bytes(), Some(0));
        assert_eq!(a.images_bytes(), Some(900));
        assert_eq!(a.build_cache_bytes(), Some(10));
        assert_eq!(a.containers()[0].size_root_fs, Some(705));
        assert_eq!(a.volumes()[0].name.as_deref(), Some("v"));
    }
}
