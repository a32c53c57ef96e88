//! The host wharf runs on: what it has (`facts`), whether that is enough for a bundle
//! (`checks`, `requirements`), the one way to run host commands (`runner`), safe fixes
//! (`sysctl`) and MetalLB address ranges (`metallb`).

pub mod checks;
pub mod facts;
pub mod metallb;
pub mod microk8s;
pub mod quantity;
pub mod requirements;
pub mod rpi;
pub mod runner;
pub mod sysctl;
