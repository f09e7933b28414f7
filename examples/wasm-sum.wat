;; A `wasm` workload: sums the decimal numbers in /input/numbers.txt and writes the total,
;; in decimal with a newline, to /output/sum.txt. Anything that is not a digit separates
;; numbers; the sum wraps around at 2^64. Exits with status 1 when the input cannot be
;; opened, 2 when it cannot be read, 3 when the output cannot be written.
;;
;; It is a WASI (preview 1) command written by hand, to show the whole contract in a page:
;; /input is fd 3 (read-only) and /output is fd 4, as the runtime preopens them.
;; crates/runtime/tests/wasm.rs runs this file.
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))

  ;; 0: an iovec (pointer, length); 8: an fd written by path_open; 12: a byte count
  ;; 64: the file names; 128..160: the digits of the answer; 1024..: the read buffer
  (memory (export "memory") 1)
  (data (i32.const 64) "numbers.txt")
  (data (i32.const 96) "sum.txt")

  (global $input i32 (i32.const 3))
  (global $output i32 (i32.const 4))
  (global $buffer i32 (i32.const 1024))
  (global $buffer_len i32 (i32.const 64512))

  (func $exit_if (param $failed i32) (param $status i32)
    (if (local.get $failed) (then (call $proc_exit (local.get $status)))))

  (func (export "_start")
    (local $fd i32) (local $n i32) (local $i i32) (local $digit i32)
    (local $sum i64) (local $number i64) (local $at i32)

    ;; open numbers.txt under /input with the right to read (rights bit 1: fd_read)
    (call $exit_if
      (call $path_open (global.get $input) (i32.const 0) (i32.const 64) (i32.const 11)
        (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 8))
      (i32.const 1))
    (local.set $fd (i32.load (i32.const 8)))

    ;; read the file a buffer at a time; a number may straddle two buffers
    (block $eof
      (loop $read
        (i32.store (i32.const 0) (global.get $buffer))
        (i32.store (i32.const 4) (global.get $buffer_len))
        (call $exit_if (call $fd_read (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 12)) (i32.const 2))
        (local.set $n (i32.load (i32.const 12)))
        (br_if $eof (i32.eqz (local.get $n)))
        (local.set $i (i32.const 0))
        (loop $scan
          (local.set $digit
            (i32.sub (i32.load8_u (i32.add (global.get $buffer) (local.get $i))) (i32.const 48)))
          (if (i32.lt_u (local.get $digit) (i32.const 10))
            (then
              (local.set $number
                (i64.add (i64.mul (local.get $number) (i64.const 10)) (i64.extend_i32_u (local.get $digit)))))
            (else
              (local.set $sum (i64.add (local.get $sum) (local.get $number)))
              (local.set $number (i64.const 0))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $scan (i32.lt_u (local.get $i) (local.get $n))))
        (br $read)))
    (local.set $sum (i64.add (local.get $sum) (local.get $number)))

    ;; the digits, last first, ending in a newline at 159
    (i32.store8 (i32.const 159) (i32.const 10))
    (local.set $at (i32.const 159))
    (loop $digits
      (local.set $at (i32.sub (local.get $at) (i32.const 1)))
      (i32.store8 (local.get $at) (i32.add (i32.const 48) (i32.wrap_i64 (i64.rem_u (local.get $sum) (i64.const 10)))))
      (local.set $sum (i64.div_u (local.get $sum) (i64.const 10)))
      (br_if $digits (i64.ne (local.get $sum) (i64.const 0))))

    ;; create or truncate sum.txt under /output (oflags 9: creat | trunc; rights bit 6: fd_write)
    (call $exit_if
      (call $path_open (global.get $output) (i32.const 0) (i32.const 96) (i32.const 7)
        (i32.const 9) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 8))
      (i32.const 3))
    (i32.store (i32.const 0) (local.get $at))
    (i32.store (i32.const 4) (i32.sub (i32.const 160) (local.get $at)))
    (call $exit_if (call $fd_write (i32.load (i32.const 8)) (i32.const 0) (i32.const 1) (i32.const 12)) (i32.const 3))
    (call $exit_if
      (i32.ne (i32.load (i32.const 12)) (i32.sub (i32.const 160) (local.get $at)))
      (i32.const 3))))
