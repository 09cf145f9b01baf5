//! The commands that release a DPA range the host holds.

use crate::release::ReleaseSteps;
use std::string::ToString;

const DELETE0: &str = "echo region0 > $(readlink -f /sys/bus/cxl/devices/region0/..)/delete_region";

#[test]
fn a_region_the_cxl_core_kept_is_disabled_then_deleted() {
    let steps = ReleaseSteps::new("region0");
    assert!(steps.releasable());
    assert_eq!(
        steps.to_string(),
        std::format!("cxl disable-region region0; {DELETE0}")
    );
}

#[test]
fn memory_onlined_through_dax_goes_offline_first() {
    let steps = ReleaseSteps::new("region0 > dax0.0 > System RAM (kmem)");
    assert!(steps.releasable());
    assert_eq!(
        steps.to_string(),
        std::format!("daxctl offline-memory dax0.0; cxl disable-region region0; {DELETE0}")
    );
    // A dax device in device-dax mode (no System RAM under it) needs no offlining.
    assert_eq!(
        ReleaseSteps::new("region12 > dax12.3").to_string(),
        "cxl disable-region region12; \
         echo region12 > $(readlink -f /sys/bus/cxl/devices/region12/..)/delete_region"
    );
}

#[test]
fn owners_no_command_releases_are_named() {
    for (holders, owner) in [
        ("System RAM", "System RAM"),
        ("cxl-vfio-pci 0000:0d:00.0", "cxl-vfio-pci 0000:0d:00.0"),
        ("cxl_vfio_claim_test", "cxl_vfio_claim_test"),
        ("Soft Reserved > dax0.0", "Soft Reserved"),
        ("", ""),
    ] {
        let steps = ReleaseSteps::new(holders);
        assert!(!steps.releasable(), "{holders}");
        assert_eq!(
            steps.to_string(),
            std::format!("no command releases it: its owner is {owner:?}")
        );
    }
}

#[test]
fn names_that_only_look_like_regions_or_dax_devices_are_not_taken_for_them() {
    for holders in ["region", "regionA", "region0x", "my region0", "region0 (x)"] {
        assert!(!ReleaseSteps::new(holders).releasable(), "{holders}");
    }
    // Not dax devices: the System RAM under them is not offlined with daxctl.
    for dax in ["dax", "dax0", "dax0.", "dax.0", "daxa.0", "dax0.0.1"] {
        let holders = std::format!("region1 > {dax} > System RAM (kmem)");
        let text = ReleaseSteps::new(&holders).to_string();
        assert!(!text.contains("daxctl"), "{holders}: {text}");
        assert!(text.starts_with("cxl disable-region region1; "), "{text}");
    }
}

#[test]
fn every_command_names_only_what_the_kernel_named() {
    // A name with shell metacharacters never reaches a command: only regionN and daxN.M do.
    let steps = ReleaseSteps::new("region0; rm -rf / > dax0.0 > System RAM");
    assert!(!steps.releasable());
    assert!(!steps.to_string().contains("cxl disable-region"));
}
