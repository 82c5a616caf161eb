//! One `mmap`ed region of an io_uring (a ring, or the SQE array), unmapped when dropped.

use std::io;
use std::os::fd::BorrowedFd;
use std::ptr::NonNull;

use rustix::mm::{MapFlags, ProtFlags};

/// A shared, read-write mapping of `len` bytes of the ring fd at one of the kernel's fixed
/// offsets (`IORING_OFF_SQ_RING`, `IORING_OFF_CQ_RING`, `IORING_OFF_SQES`).
#[derive(Debug)]
pub(super) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    /// Map `len` bytes of `ring` at `offset`.
    pub(super) fn new(ring: BorrowedFd<'_>, len: usize, offset: u64) -> io::Result<Mapping> {
        // SAFETY: a fresh mapping chosen by the kernel (null hint, no MAP_FIXED) cannot alias
        // any Rust object; `ring` is an io_uring fd, whose mmap offsets are these constants.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED | MapFlags::POPULATE,
                ring,
                offset,
            )?
        };
        let ptr = NonNull::new(ptr.cast::<u8>())
            .ok_or_else(|| io::Error::other("mmap of the io_uring returned a null pointer"))?;
        Ok(Mapping { ptr, len })
    }

    /// The address `offset` bytes into the mapping, as a pointer to `count` `T`s.
    ///
    /// # Errors
    /// `InvalidData` if those `count` `T`s lie outside the mapping or are not aligned for `T`
    /// (the kernel's offsets always are; this is a guard, not a path).
    pub(super) fn at<T>(&self, offset: u32, count: u32) -> io::Result<NonNull<T>> {
        let offset = offset as usize;
        let fits = std::mem::size_of::<T>()
            .checked_mul(count as usize)
            .and_then(|size| offset.checked_add(size))
            .is_some_and(|end| end <= self.len);
        // `wrapping_add` stays within the mapping once `fits` holds.
        let ptr = self.ptr.as_ptr().wrapping_add(offset);
        if !fits || ptr.align_offset(std::mem::align_of::<T>()) != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "io_uring offset {offset} is outside its {}-byte mapping",
                    self.len
                ),
            ));
        }
        Ok(NonNull::new(ptr.cast::<T>()).expect("an offset into a non-null mapping is non-null"))
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr` and `len` are exactly what `mmap` returned and asked for; the ring
        // that handed out pointers into it drops its own fields after its last use of them.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}
