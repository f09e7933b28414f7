//! The provider agent: what a GPU provider runs. It finds and measures the machine's
//! devices into the profile registered on chain (`devices`); bidding, pool racing and
//! running tasks through `ogpu-runtime` come next.

pub mod devices;
