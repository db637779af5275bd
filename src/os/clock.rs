//! The local time of day, as the operating system reckons it (its `TZ`):
//! the one thing the tool asks of the C library that `rustix` does not
//! cover.

/// Minute of the day, in local time (the `TZ` of the router), of a Unix time.
#[allow(unsafe_code)]
pub fn local_minute(unix_secs: u64) -> u32 {
    let t = unix_secs as libc::time_t;
    // SAFETY: localtime_r only writes the struct it is given.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if ok {
        (tm.tm_hour * 60 + tm.tm_min) as u32
    } else {
        ((unix_secs / 60) % 1440) as u32
    }
}
