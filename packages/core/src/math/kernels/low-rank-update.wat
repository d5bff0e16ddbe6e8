;; target[rows, cols] += scale · left[rows, rank] · right[rank, cols], float32, in place.
;; All pointers are byte offsets into this module's memory. Sixteen, then four output columns at a
;; time with 128-bit SIMD; the last cols % 4 columns one at a time. Coefficients scale·left[i, k] are
;; computed per row into a scratch area at `scratch`.
(module
  (memory (export "memory") 1)
  (func (export "addLowRankProduct")
    (param $target i32) (param $rows i32) (param $cols i32) (param $rank i32)
    (param $left i32) (param $right i32) (param $scale f32) (param $scratch i32)
    (local $i i32) (local $j i32) (local $k i32) (local $row i32) (local $cols4 i32)
    (local $acc v128) (local $acc2 v128) (local $p i32) (local $stride i32) (local $c v128)
    (local $s f32) (local $cols16 i32) (local $q i32) (local $acc3 v128) (local $acc4 v128)
    (local.set $stride (i32.shl (local.get $cols) (i32.const 2)))
    (local.set $cols4 (i32.and (local.get $cols) (i32.const -4)))
    (local.set $cols16 (i32.and (local.get $cols) (i32.const -16)))
    (local.set $i (i32.const 0))
    (block $rows_done
      (loop $rows_loop
        (br_if $rows_done (i32.ge_u (local.get $i) (local.get $rows)))
        ;; scratch[k] = scale * left[i * rank + k]
        (local.set $k (i32.const 0))
        (block $c_done
          (loop $c_loop
            (br_if $c_done (i32.ge_u (local.get $k) (local.get $rank)))
            (f32.store
              (i32.add (local.get $scratch) (i32.shl (local.get $k) (i32.const 2)))
              (f32.mul (local.get $scale)
                (f32.load (i32.add (local.get $left)
                  (i32.shl (i32.add (i32.mul (local.get $i) (local.get $rank)) (local.get $k)) (i32.const 2))))))
            (local.set $k (i32.add (local.get $k) (i32.const 1)))
            (br $c_loop)))
        (local.set $row (i32.add (local.get $target) (i32.mul (local.get $i) (local.get $stride))))
        ;; sixteen columns at a time (four accumulators share each coefficient)
        (local.set $j (i32.const 0))
        (block $j16_done
          (loop $j16_loop
            (br_if $j16_done (i32.ge_u (local.get $j) (local.get $cols16)))
            (local.set $q (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 2))))
            (local.set $acc (v128.load (local.get $q)))
            (local.set $acc2 (v128.load offset=16 (local.get $q)))
            (local.set $acc3 (v128.load offset=32 (local.get $q)))
            (local.set $acc4 (v128.load offset=48 (local.get $q)))
            (local.set $p (i32.add (local.get $right) (i32.shl (local.get $j) (i32.const 2))))
            (local.set $k (i32.const 0))
            (block $k_done
              (loop $k_loop
                (br_if $k_done (i32.ge_u (local.get $k) (local.get $rank)))
                (local.set $c (f32x4.splat (f32.load (i32.add (local.get $scratch) (i32.shl (local.get $k) (i32.const 2))))))
                (local.set $acc (f32x4.add (local.get $acc) (f32x4.mul (local.get $c) (v128.load (local.get $p)))))
                (local.set $acc2 (f32x4.add (local.get $acc2) (f32x4.mul (local.get $c) (v128.load offset=16 (local.get $p)))))
                (local.set $acc3 (f32x4.add (local.get $acc3) (f32x4.mul (local.get $c) (v128.load offset=32 (local.get $p)))))
                (local.set $acc4 (f32x4.add (local.get $acc4) (f32x4.mul (local.get $c) (v128.load offset=48 (local.get $p)))))
                (local.set $p (i32.add (local.get $p) (local.get $stride)))
                (local.set $k (i32.add (local.get $k) (i32.const 1)))
                (br $k_loop)))
            (v128.store (local.get $q) (local.get $acc))
            (v128.store offset=16 (local.get $q) (local.get $acc2))
            (v128.store offset=32 (local.get $q) (local.get $acc3))
            (v128.store offset=48 (local.get $q) (local.get $acc4))
            (local.set $j (i32.add (local.get $j) (i32.const 16)))
            (br $j16_loop)))
        ;; four columns
        (block $j4_done
          (loop $j4_loop
            (br_if $j4_done (i32.ge_u (local.get $j) (local.get $cols4)))
            (local.set $acc (v128.load (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 2)))))
            (local.set $p (i32.add (local.get $right) (i32.shl (local.get $j) (i32.const 2))))
            (local.set $k (i32.const 0))
            (block $k4_done
              (loop $k4_loop
                (br_if $k4_done (i32.ge_u (local.get $k) (local.get $rank)))
                (local.set $acc (f32x4.add (local.get $acc)
                  (f32x4.mul (f32x4.splat (f32.load (i32.add (local.get $scratch) (i32.shl (local.get $k) (i32.const 2)))))
                    (v128.load (local.get $p)))))
                (local.set $p (i32.add (local.get $p) (local.get $stride)))
                (local.set $k (i32.add (local.get $k) (i32.const 1)))
                (br $k4_loop)))
            (v128.store (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 2))) (local.get $acc))
            (local.set $j (i32.add (local.get $j) (i32.const 4)))
            (br $j4_loop)))
        ;; remaining columns
        (block $j1_done
          (loop $j1_loop
            (br_if $j1_done (i32.ge_u (local.get $j) (local.get $cols)))
            (local.set $s (f32.load (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 2)))))
            (local.set $p (i32.add (local.get $right) (i32.shl (local.get $j) (i32.const 2))))
            (local.set $k (i32.const 0))
            (block $k1_done
              (loop $k1_loop
                (br_if $k1_done (i32.ge_u (local.get $k) (local.get $rank)))
                (local.set $s (f32.add (local.get $s)
                  (f32.mul (f32.load (i32.add (local.get $scratch) (i32.shl (local.get $k) (i32.const 2))))
                    (f32.load (local.get $p)))))
                (local.set $p (i32.add (local.get $p) (local.get $stride)))
                (local.set $k (i32.add (local.get $k) (i32.const 1)))
                (br $k1_loop)))
            (f32.store (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 2))) (local.get $s))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $j1_loop)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $rows_loop))))
)
