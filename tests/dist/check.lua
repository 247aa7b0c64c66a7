-- moonlight check.lua SINGLE_DIR DDP_DIR: what a 2-rank run reports against the
-- single process's (tests/dist/train.lua's report_rank<r>.lua files). Exit 1 with
-- every failed check listed.
local single, ddp = arg[1], arg[2]
local s = dofile(single .. "/report_rank0.lua")
local r0, r1 = dofile(ddp .. "/report_rank0.lua"), dofile(ddp .. "/report_rank1.lua")
local failures = {}
local function check(ok, fmt, ...)
  if not ok then failures[#failures + 1] = string.format(fmt, ...) end
end
local function close(a, b, tol) return math.abs(a - b) <= tol * math.max(1, math.abs(b)) end

check(r0.world == 2 and r1.world == 2, "world sizes %d, %d (expected 2)", r0.world, r1.world)
check(r0.is_global_zero == true and r1.is_global_zero == false, "is_global_zero")
-- each rank ran half the batches of the single process, the same optimizer steps
check(r0.batches == s.batches and r1.batches == s.batches, "batches per epoch %d, %d vs %d",
      r0.batches, r1.batches, s.batches)
check(r0.global_step == s.global_step and r1.global_step == s.global_step, "global_step %d, %d vs %d",
      r0.global_step, r1.global_step, s.global_step)
-- rank 0 alone wrote rows and checkpoints; both used rank 0's version directory
check(r0.logged == s.logged and r0.logged > 0, "rank 0 logged %d rows (single: %d)", r0.logged, s.logged)
check(r1.logged == 0, "rank 1 logged %d rows (expected none)", r1.logged)
check(r0.saved == s.saved and r0.saved > 0, "rank 0 saved %d checkpoints (single: %d)", r0.saved, s.saved)
check(r1.saved == 0, "rank 1 saved %d checkpoints (expected none)", r1.saved)
check(r0.log_dir == r1.log_dir, "log dirs %s, %s", r0.log_dir, r1.log_dir)
-- reductions: the validation loss is the mean over all 1024 samples, as one process's
check(close(r0.val_loss, s.val_loss, 1e-6), "val_loss %.9g (single: %.9g)", r0.val_loss, s.val_loss)
check(r0.val_loss == r1.val_loss, "val_loss differs between ranks: %.17g, %.17g", r0.val_loss, r1.val_loss)
-- rank r logs r: mean 0.5, sum over both ranks' steps 1 per rank-1 step, max 1;
-- the step value with sync_dist is the mean; without sync_dist each keeps its own
for _, r in ipairs({r0, r1}) do
  check(r.r_mean == 0.5, "rank %d: r_mean %s (expected 0.5)", r.rank, r.r_mean)
  check(r.r_sum == r.batches, "rank %d: r_sum %s (expected %d)", r.rank, r.r_sum, r.batches)
  check(r.r_max == 1, "rank %d: r_max %s (expected 1)", r.rank, r.r_max)
  check(r.r_step == 0.5, "rank %d: r_step %s (expected 0.5)", r.rank, r.r_step)
  check(r.r_local == r.rank, "rank %d: r_local %s (expected its own %d)", r.rank, r.r_local, r.rank)
end
-- ModelCheckpoint's decisions are rank 0's everywhere; every rank restored that file
check(r0.best == r1.best and r0.best ~= "", "best_model_path %q, %q", r0.best, r1.best)
check(s.best:match("[^/]*$") == r0.best:match("[^/]*$"), "best checkpoint %s (single: %s)", r0.best, s.best)
check(r0.restored == r1.restored and close(r0.restored, s.restored, 1e-6), "validated from best: %.9g, %.9g " ..
      "(single: %.9g)", r0.restored, r1.restored, s.restored)
-- the files: one version directory, a metrics.csv, the checkpoints
local function exists(p) local f = io.open(p) if f then f:close() end return f ~= nil end
check(exists(r0.log_dir .. "/metrics.csv"), "no %s/metrics.csv", r0.log_dir)
check(not exists(r0.log_dir:gsub("version_0$", "version_1") .. "/metrics.csv"), "a second version directory")
check(exists(ddp .. "/ckpt/last.safetensors"), "no last.safetensors")

if #failures > 0 then
  io.stderr:write("check: " .. table.concat(failures, "\ncheck: ") .. "\n")
  os.exit(1)
end
print("check: ranks, rank-0 duties and reduced metrics as expected")
