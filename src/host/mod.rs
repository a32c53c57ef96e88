//! The host wharf runs on: what it has (`facts`), whether that is enough for a bundle
//! (`checks`, `requirements`), the one way to run host commands (`runner`), safe fixes
//! (`sysctl`), MetalLB address ranges (`metallb`) and the plan of a Kubernetes upgrade (`refresh`).

pub mod checks;
pub mod facts;
pub mod metallb;
pub mod microk8s;
pub mod quantity;
pub mod refresh;
pub mod requirements;
pub mod rpi;
pub mod runner;
pub mod sysctl;
