;; A compute kernel that runs for as long as it is told: `wasm-spin N` steps a 64-bit
;; linear congruential generator N times and prints the final state in hex. Used to give
;; tasks a known running time (the market benchmark, the killed-provider test).
(module
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; 0: argc, 4: argv buffer size, 16..: argv pointers, 256..: argv strings,
  ;; 1024..: the output line, 2048: an iovec, 2056: bytes written.
  (func $steps (result i64)
    (local $at i32) (local $digit i32) (local $n i64)
    (drop (call $args_sizes_get (i32.const 0) (i32.const 4)))
    (if (i32.lt_u (i32.load (i32.const 0)) (i32.const 2)) (then (return (i64.const 0))))
    (if (i32.gt_u (i32.load (i32.const 4)) (i32.const 700)) (then (return (i64.const 0))))
    (drop (call $args_get (i32.const 16) (i32.const 256)))
    (local.set $at (i32.load (i32.const 20)))
    (block $end
      (loop $next
        (local.set $digit (i32.sub (i32.load8_u (local.get $at)) (i32.const 48)))
        (br_if $end (i32.gt_u (local.get $digit) (i32.const 9)))
        (local.set $n (i64.add (i64.mul (local.get $n) (i64.const 10)) (i64.extend_i32_u (local.get $digit))))
        (local.set $at (i32.add (local.get $at) (i32.const 1)))
        (br $next)))
    (local.get $n))
  (func (export "_start")
    (local $n i64) (local $state i64) (local $i i32) (local $nibble i32)
    (local.set $n (call $steps))
    (block $done
      (loop $step
        (br_if $done (i64.eqz (local.get $n)))
        (local.set $state (i64.add (i64.mul (local.get $state) (i64.const 6364136223846793005))
                                   (i64.const 1442695040888963407)))
        (local.set $n (i64.sub (local.get $n) (i64.const 1)))
        (br $step)))
    ;; Sixteen hex digits, most significant first, then a newline.
    (loop $digit
      (local.set $nibble (i32.wrap_i64 (i64.and (i64.shr_u (local.get $state)
        (i64.extend_i32_u (i32.sub (i32.const 60) (i32.mul (local.get $i) (i32.const 4))))) (i64.const 15))))
      (i32.store8 (i32.add (i32.const 1024) (local.get $i))
        (i32.add (local.get $nibble) (select (i32.const 48) (i32.const 87) (i32.lt_u (local.get $nibble) (i32.const 10)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $digit (i32.lt_u (local.get $i) (i32.const 16))))
    (i32.store8 (i32.const 1040) (i32.const 10))
    (i32.store (i32.const 2048) (i32.const 1024))
    (i32.store (i32.const 2052) (i32.const 17))
    (drop (call $fd_write (i32.const 1) (i32.const 2048) (i32.const 1) (i32.const 2056)))))
