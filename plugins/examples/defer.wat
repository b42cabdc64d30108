;; Always defers to the native fallback scheduler: the smallest valid plugin, in WAT.
;; The host reads WAT text directly (wasmtime's `wat` feature), so it needs no build step.
(module
  (memory (export "memory") 1)
  (func (export "rvs_abi_v1") (result i32) (i32.const 0))
  ;; The host area at address 1024, room for (65536 - 1024 - 128) / 48 destinations.
  (func (export "rvs_table") (param $cap i32) (result i32)
    (select (i32.const 1024) (i32.const 0)
      (i32.le_u (local.get $cap) (i32.const 1340))))
  (func (export "rvs_pick") (result i32) (i32.const -2)))
