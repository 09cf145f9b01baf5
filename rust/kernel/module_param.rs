// SPDX-License-Identifier: GPL-2.0

//! Module parameters.
//!
//! The [`module!`](macros::module) macro declares parameters in its `params` block; this module
//! holds the types the macro instantiates. Parameters are read-only after load: they are set from
//! the kernel command line or `modprobe` arguments before the module's `init` runs, and are shown
//! (never written) through `/sys/module/<module>/parameters/`.
//!
//! C header: [`include/linux/moduleparam.h`](srctree/include/linux/moduleparam.h)

use crate::error::{code::EINVAL, Result};
use crate::ffi::{c_char, c_int, c_void};
use crate::str::CStr;
use core::cell::UnsafeCell;

/// Types that can be module parameters.
///
/// The trait is `Copy` so that no value ever needs dropping when a module is unloaded.
pub trait ModuleParam: Sized + Copy + 'static {
    /// The `parmtype` name `modinfo` shows.
    const TYPE_NAME: &'static str;

    /// Whether the parameter may be given without a value (`foo` meaning `foo=1`).
    const NOARG: bool = false;

    /// Parses the argument given on the command line. `None` when given without a value.
    fn try_from_param_arg(arg: Option<&[u8]>) -> Result<Self>;

    /// Formats the value as `sysfs` shows it, returning the number of bytes written.
    fn format(&self, buf: &mut [u8]) -> usize;
}

impl ModuleParam for bool {
    const TYPE_NAME: &'static str = "bool";
    const NOARG: bool = true;

    /// Accepts what C's `kstrtobool` accepts.
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::module_param::ModuleParam;
    ///
    /// assert_eq!(bool::try_from_param_arg(Some(b"1")), Ok(true));
    /// assert_eq!(bool::try_from_param_arg(Some(b"Y")), Ok(true));
    /// assert_eq!(bool::try_from_param_arg(Some(b"on")), Ok(true));
    /// assert_eq!(bool::try_from_param_arg(Some(b"n")), Ok(false));
    /// assert_eq!(bool::try_from_param_arg(Some(b"OFF")), Ok(false));
    /// // A bare `disable_cxl` on the command line means "true".
    /// assert_eq!(bool::try_from_param_arg(None), Ok(true));
    /// assert!(bool::try_from_param_arg(Some(b"maybe")).is_err());
    /// assert!(bool::try_from_param_arg(Some(b"")).is_err());
    /// ```
    fn try_from_param_arg(arg: Option<&[u8]>) -> Result<Self> {
        let Some(arg) = arg else {
            return Ok(true);
        };
        match arg {
            [b'y' | b'Y' | b't' | b'T' | b'1', ..] => Ok(true),
            [b'n' | b'N' | b'f' | b'F' | b'0', ..] => Ok(false),
            [b'o' | b'O', b'n' | b'N', ..] => Ok(true),
            [b'o' | b'O', b'f' | b'F', ..] => Ok(false),
            _ => Err(EINVAL),
        }
    }

    /// Formats as C's `param_get_bool` does.
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::module_param::ModuleParam;
    ///
    /// let mut buf = [0u8; 4];
    /// let n = true.format(&mut buf);
    /// assert_eq!(&buf[..n], b"Y\n");
    /// let n = false.format(&mut buf);
    /// assert_eq!(&buf[..n], b"N\n");
    /// ```
    fn format(&self, buf: &mut [u8]) -> usize {
        let text: &[u8] = if *self { b"Y\n" } else { b"N\n" };
        let n = text.len().min(buf.len());
        buf[..n].copy_from_slice(&text[..n]);
        n
    }
}

impl ModuleParam for u64 {
    const TYPE_NAME: &'static str = "ullong";

    /// Accepts what C's `kstrtoull` with base 0 accepts: decimal, `0x` hexadecimal or `0`
    /// octal, with an optional `+` sign and one trailing newline; no overflow.
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::module_param::ModuleParam;
    ///
    /// assert_eq!(u64::try_from_param_arg(Some(b"42")), Ok(42));
    /// assert_eq!(u64::try_from_param_arg(Some(b"0x110000000")), Ok(0x1_1000_0000));
    /// assert_eq!(u64::try_from_param_arg(Some(b"0X1f\n")), Ok(0x1f));
    /// assert_eq!(u64::try_from_param_arg(Some(b"010")), Ok(8));
    /// assert_eq!(u64::try_from_param_arg(Some(b"0")), Ok(0));
    /// assert_eq!(u64::try_from_param_arg(Some(b"18446744073709551615")), Ok(u64::MAX));
    /// assert!(u64::try_from_param_arg(Some(b"18446744073709551616")).is_err());
    /// assert!(u64::try_from_param_arg(Some(b"0x")).is_err());
    /// assert!(u64::try_from_param_arg(Some(b"-1")).is_err());
    /// assert!(u64::try_from_param_arg(Some(b"12k")).is_err());
    /// assert!(u64::try_from_param_arg(Some(b"")).is_err());
    /// assert!(u64::try_from_param_arg(None).is_err());
    /// ```
    fn try_from_param_arg(arg: Option<&[u8]>) -> Result<Self> {
        let mut digits = arg.ok_or(EINVAL)?;
        if let [rest @ .., b'\n'] = digits {
            digits = rest;
        }
        if let [b'+', rest @ ..] = digits {
            digits = rest;
        }
        let (radix, digits) = match digits {
            [b'0', b'x' | b'X', rest @ ..] => (16, rest),
            [b'0', rest @ ..] if !rest.is_empty() => (8, rest),
            _ => (10, digits),
        };
        if digits.is_empty() {
            return Err(EINVAL);
        }
        digits.iter().try_fold(0u64, |acc, &c| {
            let digit = (c as char).to_digit(radix).ok_or(EINVAL)?;
            acc.checked_mul(u64::from(radix))
                .and_then(|v| v.checked_add(u64::from(digit)))
                .ok_or(EINVAL)
        })
    }

    /// Formats as C's `param_get_ullong` does: decimal and a newline.
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::module_param::ModuleParam;
    ///
    /// let mut buf = [0u8; 24];
    /// let n = 0x1_1000_0000u64.format(&mut buf);
    /// assert_eq!(&buf[..n], b"4563402752\n");
    /// let n = u64::MAX.format(&mut buf);
    /// assert_eq!(&buf[..n], b"18446744073709551615\n");
    /// ```
    fn format(&self, buf: &mut [u8]) -> usize {
        let mut digits = [0u8; 21];
        let mut at = digits.len() - 1;
        digits[at] = b'\n';
        let mut value = *self;
        loop {
            at -= 1;
            digits[at] = b'0' + (value % 10) as u8;
            value /= 10;
            if value == 0 {
                break;
            }
        }
        let text = &digits[at..];
        let n = text.len().min(buf.len());
        buf[..n].copy_from_slice(&text[..n]);
        n
    }
}

/// The storage of one parameter, instantiated by [`module!`](macros::module).
///
/// # Invariants
///
/// `value` is written only by [`set_param`], which the module loader calls while it parses the
/// module's arguments: before the module's `init` runs, with no other access possible. The
/// parameter's sysfs file is read-only, so the value never changes afterwards and shared reads
/// are sound.
pub struct ModuleParamAccess<T> {
    value: UnsafeCell<T>,
}

// SAFETY: By the type invariants the value is never written once it can be shared.
unsafe impl<T: Sync> Sync for ModuleParamAccess<T> {}

impl<T: ModuleParam> ModuleParamAccess<T> {
    #[doc(hidden)]
    pub const fn new(default: T) -> Self {
        Self {
            value: UnsafeCell::new(default),
        }
    }

    /// Returns the value of the parameter.
    pub fn value(&self) -> &T {
        // SAFETY: By the type invariants there are no writes once the module runs.
        unsafe { &*self.value.get() }
    }

    #[doc(hidden)]
    pub const fn as_void_ptr(&self) -> *mut c_void {
        self.value.get().cast()
    }
}

/// `struct kernel_param_ops::set` for parameters of type `T`.
///
/// # Safety
///
/// `val` is null or a valid NUL-terminated string, and `param` points to a `kernel_param` built by
/// [`module!`](macros::module) whose `arg` is the storage of a [`ModuleParamAccess<T>`], with no
/// concurrent access (the module loader serialises argument parsing).
unsafe extern "C" fn set_param<T: ModuleParam>(
    val: *const c_char,
    param: *const crate::bindings::kernel_param,
) -> c_int {
    let arg = if val.is_null() {
        None
    } else {
        // SAFETY: `val` is a valid NUL-terminated string by the safety requirements.
        Some(unsafe { CStr::from_char_ptr(val) }.as_bytes())
    };
    match T::try_from_param_arg(arg) {
        Ok(v) => {
            // SAFETY: `arg` is the storage of a `ModuleParamAccess<T>` and access is exclusive,
            // both by the safety requirements.
            unsafe { *(*param).__bindgen_anon_1.arg.cast::<T>() = v };
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// `struct kernel_param_ops::get` for parameters of type `T`.
///
/// # Safety
///
/// `buf` is valid for writes of `PAGE_SIZE` bytes and `param` is as for [`set_param`].
unsafe extern "C" fn get_param<T: ModuleParam>(
    buf: *mut c_char,
    param: *const crate::bindings::kernel_param,
) -> c_int {
    // SAFETY: `buf` is valid for `PAGE_SIZE` bytes by the safety requirements.
    let out = unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), crate::page::PAGE_SIZE) };
    // SAFETY: `arg` points to an initialised `T` that is not written concurrently.
    let value = unsafe { &*(*param).__bindgen_anon_1.arg.cast::<T>() };
    value.format(out) as c_int
}

/// The `kernel_param_ops` for parameters of type `T`.
pub struct ParamOps<T>(core::marker::PhantomData<T>);

impl<T: ModuleParam> ParamOps<T> {
    const OPS: crate::bindings::kernel_param_ops = crate::bindings::kernel_param_ops {
        flags: if T::NOARG {
            crate::bindings::KERNEL_PARAM_OPS_FL_NOARG
        } else {
            0
        },
        set: Some(set_param::<T>),
        get: Some(get_param::<T>),
        free: None,
    };

    #[doc(hidden)]
    pub const fn ops() -> &'static crate::bindings::kernel_param_ops {
        &Self::OPS
    }
}

/// A `struct kernel_param` placed in the `__param` section by [`module!`](macros::module).
#[repr(transparent)]
#[doc(hidden)]
pub struct KernelParam(crate::bindings::kernel_param);

impl KernelParam {
    /// Wraps a parameter for the `__param` section.
    ///
    /// # Safety
    ///
    /// `param.arg` is the storage of a [`ModuleParamAccess<T>`] whose `T` matches `param.ops`
    /// (`ParamOps::<T>::ops()`), and `param.name` a NUL-terminated string, both `'static`:
    /// the module loader hands them to `set_param`/`get_param`.
    #[doc(hidden)]
    pub const unsafe fn new(param: crate::bindings::kernel_param) -> Self {
        Self(param)
    }
}

// SAFETY: Only the C module loader and sysfs use the structure, with their own serialisation.
unsafe impl Sync for KernelParam {}
