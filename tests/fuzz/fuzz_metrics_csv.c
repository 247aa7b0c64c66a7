/* Fuzz target: the metrics.csv reader behind `moonlight plot` and ml.history
 * (lua/moonlight/history.lua on util.csv_records), through a Lua state: read,
 * the per-epoch view and its table, and the panels history.plot builds (the
 * drawing itself is the plot plugin's, replaced here by a check of what it would
 * get). Lua errors are the input's; a crash, a hang or a malformed panel is not. */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz.h"

static const char code[] =
    "local path = ...\n"
    "local history = require 'moonlight.history'\n"
    "local core = require 'moonlight.core'\n"
    "local bad\n"
    "core._plot_png = function(png, panels, opts)\n"
    "  local ok, e = pcall(function()\n"
    "    assert(type(panels) == 'table' and #panels > 0, 'no panels')\n"
    "    for _, p in ipairs(panels) do\n"
    "      assert(type(p.title) == 'string' and #p.series > 0, 'a panel without series')\n"
    "      for _, s in ipairs(p.series) do\n"
    "        assert(#s.x == #s.y and #s.x > 0, 'x and y differ')\n"
    "        for i = 1, #s.x do\n"
    "          assert(type(s.x[i]) == 'number' and type(s.y[i]) == 'number' and s.y[i] - s.y[i] == 0,\n"
    "                 'a point that is not a finite number')\n"
    "        end\n"
    "      end\n"
    "    end\n"
    "  end)\n"
    "  if not ok then bad = e end\n"
    "  return png\n"
    "end\n"
    "local ok, h = pcall(history.read, path)\n"
    "if not ok then assert(type(h) == 'string' and h:find('history.read', 1, true), h) return end\n"
    "assert(type(h.columns) == 'table' and type(h.rows) == 'table')\n"
    "for _, row in ipairs(h.rows) do\n"
    "  for k, v in pairs(row) do assert(type(k) == 'string' and (type(v) == 'number' or type(v) == 'string')) end\n"
    "end\n"
    "local ok2, rows = pcall(history.per_epoch, h)\n"
    "if ok2 then pcall(history.format_table, rows, h.columns) end\n"
    "pcall(history.plot, path, '/nonexistent/never-written.png')\n"
    "if bad then error('history.plot made a bad panel: ' .. tostring(bad)) end\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *args[1] = {fuzz_write_file(data, size, ".csv")};
    const char *err;
    if (fuzz_lua_call(code, 1, args, &err)) {
        fprintf(stderr, "fuzz_metrics_csv: %s\n", err);
        abort();
    }
    return 0;
}
