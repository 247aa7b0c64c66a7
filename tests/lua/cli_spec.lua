-- The moonlight CLI: scripts with arg, -e, --version, --help, exit codes, plot.
local bin = os.getenv("MOONLIGHT_BIN") or "build/moonlight"

local function run(cmd)
  local f = io.popen(cmd .. " 2>&1; echo \"rc=$?\"")
  local out = f:read("a")
  f:close()
  local rc = tonumber(out:match("rc=(%d+)%s*$"))
  return out:gsub("rc=%d+%s*$", ""), rc
end

local function tmpfile(text)
  local p = os.tmpname()
  local f = assert(io.open(p, "w"))
  f:write(text)
  f:close()
  return p
end

describe("moonlight CLI", function()
  it("prints its version", function()
    local out, rc = run(bin .. " --version")
    assert.are.equal(0, rc)
    assert.matches("^moonlight %d+%.%d+%.%d+", out)
  end)

  it("prints help", function()
    local out, rc = run(bin .. " --help")
    assert.are.equal(0, rc)
    assert.matches("usage: moonlight", out)
  end)

  it("runs code with -e, ml preloaded", function()
    local out, rc = run(bin .. " -e 'print(ml.ones({2, 3}):sum():item())'")
    assert.are.equal(0, rc)
    assert.are.equal("6.0\n", out)
  end)

  it("runs a script with arg set as lua does", function()
    local script = tmpfile('local ml = require "moonlight"\nprint(arg[0] ~= nil, arg[1], arg[2], select("#", ...))\n')
    local out, rc = run(bin .. " " .. script .. " a b")
    os.remove(script)
    assert.are.equal(0, rc)
    assert.are.equal("true\ta\tb\t2\n", out)
  end)

  it("exits 1 with a traceback on a script error", function()
    local script = tmpfile('local ml = require "moonlight"\nlocal function f() return ml.zeros({2}) + ml.zeros({3}) end\nf()\n')
    local out, rc = run(bin .. " " .. script)
    os.remove(script)
    assert.are.equal(1, rc)
    assert.matches("add: shapes %[2%] and %[3%] cannot be broadcast", out)
    assert.matches("stack traceback", out)
  end)

  it("exits 1 on a missing script and on an unknown option", function()
    local _, rc = run(bin .. " /nonexistent/script.lua")
    assert.are.equal(1, rc)
    local out, rc2 = run(bin .. " --frobnicate")
    assert.are.equal(1, rc2)
    assert.matches("unknown option", out)
  end)

  it("plots a metrics.csv to a PNG", function()
    local csv = tmpfile("epoch,loss,step,val_loss\n0,0.5,49,\n0,0.3,99,\n0,,99,0.25\n1,0.2,149,\n1,,199,0.18\n")
    local png = os.tmpname() .. ".png"
    local out, rc = run(bin .. " plot " .. csv .. " -o " .. png)
    assert.are.equal(0, rc, out)
    local f = assert(io.open(png, "rb"))
    local head = f:read(8)
    f:close()
    assert.are.equal("\137PNG\r\n\26\n", head)
    os.remove(png)
    local _, rc2 = run(bin .. " plot /nonexistent.csv -o " .. png)
    assert.are.equal(1, rc2)
    os.remove(csv)
  end)

  it("plot: a usage text, and one-line errors without a traceback", function()
    local out, rc = run(bin .. " plot --help")
    assert.are.equal(0, rc, out)
    assert.matches("^usage: moonlight plot metrics.csv", out)
    out, rc = run(bin .. " plot -h")
    assert.are.equal(0, rc, out)
    assert.matches("^usage: moonlight plot", out)
    out, rc = run("cd /tmp && " .. bin .. " plot missing.csv")
    assert.are.equal(1, rc)
    assert.are.equal("moonlight plot: history.read: cannot open missing.csv: No such file or directory\n", out)
    out, rc = run(bin .. " plot")
    assert.are.equal(1, rc)
    assert.matches("^usage: moonlight plot", out)
    out, rc = run(bin .. " plot --bogus")
    assert.are.equal(1, rc)
    assert.matches("^moonlight plot: unknown option '%-%-bogus'\nusage:", out)
    out, rc = run(bin .. " plot m.csv -o")
    assert.are.equal(1, rc)
    assert.are.equal("moonlight plot: -o needs a file name\n", out)
    local csv = tmpfile('epoch,loss\n0,"0.5\n')
    out, rc = run(bin .. " plot " .. csv)
    os.remove(csv)
    assert.are.equal(1, rc)
    assert.are.equal(1, select(2, out:gsub("\n", "")), out)
    assert.matches("unterminated quoted cell", out)
    assert.is_nil(out:find("traceback"))
  end)

  it("prints Lightning's output, one progress line per epoch when not a terminal", function()
    local dir = os.tmpname()
    os.remove(dir)
    local script = tmpfile(([[
local ml = require "moonlight"
local nn, data = ml.nn, ml.data
ml.manual_seed(1)
local x, y = ml.randn({32, 3}), ml.randn({32, 1})
local Net = nn.Module:extend("Net")
function Net:init() self.fc = nn.Linear(3, 1) end
function Net:training_step(b) local l = ml.F.mse_loss(self.fc(b[1]), b[2]); self:log("loss", l, {prog_bar = true}); return l end
function Net:validation_step(b) self:log("val_loss", ml.F.mse_loss(self.fc(b[1]), b[2]), {prog_bar = true}) end
function Net:configure_optimizers() return ml.optim.SGD(self:parameters(), {lr = 0.1}) end
local loader = data.DataLoader(data.TensorDataset(x, y), {batch_size = 8})
local tr = ml.Trainer({max_epochs = 2, default_root_dir = "%s", plot = true})
tr:fit(Net(), loader, loader)
print("png", ml._sys.kind(tr.logger.log_dir .. "/curves.png"))
]]):format(dir))
    local out, rc = run(bin .. " " .. script .. " | cat")
    os.remove(script)
    assert.are.equal(0, rc, out)
    assert.matches("GPU available: False, used: False", out)
    assert.matches("| Name | Type   | Params | Mode", out, 1, true)
    local lines = 0
    for line in out:gmatch("Epoch %d+: 100%%|[^\n]*") do
      lines = lines + 1
      assert.matches("4/4 %[", line)
      assert.matches("v_num=0", line)
      assert.matches("val_loss=", line)
    end
    assert.are.equal(2, lines)
    assert.is_nil(out:find("\27%["))
    assert.matches("png\tfile", out)
  end)
end)


describe("the CUDA plugin", function()
  it("is loaded only on demand, and reports why CUDA is unavailable", function()
    local plugin = (os.getenv("MOONLIGHT_BUILD_DIR") or "build") .. "/libmoonlight_cuda.so"
    local f = io.open(plugin, "rb")
    local code = "local ok, err = pcall(ml.cuda.device_name); print(ml.cuda.is_available(), err)"
    local out, rc = run("MOONLIGHT_CUDA_FORCE_LOAD=1 " .. bin .. " -e '" .. code .. "'")
    assert.are.equal(0, rc, out)
    if not f then
      assert.matches("has no CUDA backend", out)
      return
    end
    f:close()
    if out:match("^true") then return end -- a machine with a GPU
    -- the plugin was found, loaded and asked: the reason comes from the CUDA runtime
    assert.matches("cudaGetDeviceCount", out)
    -- without the forcing variable and without a driver, nothing is loaded at all
    local maps = run(bin .. " -e 'ml.cuda.is_available(); for l in io.lines(\"/proc/self/maps\") do if l:find(\"cuda\") then print(l) end end'")
    local has_driver = io.open("/proc/driver/nvidia/version") or io.open("/dev/nvidiactl")
    if not has_driver then assert.are.equal("", maps) end
  end)
end)
