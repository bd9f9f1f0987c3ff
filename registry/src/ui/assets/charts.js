/* Draws the UI's charts with uPlot (uplot.min.js, loaded before this file; both `defer`).
 *
 * div.chart[data-series]: a JSON array of {"label", "run_id", "key"}; each series is fetched
 *   from /api/okla/v1/runs/{run_id}/metrics/{key}/series (downsampled to about the div's width),
 *   aligned on step and drawn as one line chart with a legend.
 * div.chart.scatter[data-points]: a JSON array of {"label", "x", "y"}, axes named by
 *   data-x-label and data-y-label; drawn as points only.
 *
 * A drawn chart gets data-rendered="true"; a failed one gets data-rendered="error" and a
 * <p class="chart-error"> with the reason. Plain ES2017, no build step.
 */
(function () {
  "use strict";

  var PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  var HEIGHT = 260;

  function color(index) {
    return PALETTE[index % PALETTE.length];
  }

  // The API writes non-finite values as the strings "NaN", "Infinity", "-Infinity": gaps here.
  function finiteOrNull(value) {
    var number = typeof value === "string" && value.trim() !== "" ? Number(value) : value;
    return typeof number === "number" && isFinite(number) ? number : null;
  }

  function chartWidth(div) {
    return Math.max(200, Math.floor(div.clientWidth || 600));
  }

  function fail(div, error) {
    var message = document.createElement("p");
    message.className = "chart-error";
    message.textContent = "Chart failed: " + (error && error.message ? error.message : String(error));
    div.appendChild(message);
    div.setAttribute("data-rendered", "error");
  }

  // Keeps a drawn chart as wide as its div.
  var drawn = [];
  var resizeTimer = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () {
      drawn.forEach(function (entry) {
        entry.plot.setSize({ width: chartWidth(entry.div), height: HEIGHT });
      });
    }, 150);
  });

  function draw(div, options, data) {
    if (typeof window.uPlot !== "function") {
      throw new Error("uPlot did not load");
    }
    var plot = new window.uPlot(options, data, div);
    drawn.push({ div: div, plot: plot });
    div.setAttribute("data-rendered", "true");
  }

  async function fetchSeries(spec, maxPoints) {
    var url = "/api/okla/v1/runs/" + encodeURIComponent(spec.run_id) + "/metrics/" +
      encodeURIComponent(spec.key) + "/series?max_points=" + maxPoints;
    var response = await fetch(url, { headers: { Accept: "application/json" } });
    var body = null;
    try {
      body = await response.json();
    } catch (ignored) {
      body = null;
    }
    if (!response.ok || body === null || !Array.isArray(body.points)) {
      var reason = body && body.message ? body.message : "HTTP " + response.status;
      throw new Error(reason + " (" + (spec.label || spec.run_id) + ", " + spec.key + ")");
    }
    return body.points;
  }

  // uPlot wants one ascending x array shared by every series: the union of the steps, with
  // null where a series has no point at a step.
  function alignOnStep(pointLists) {
    var steps = new Set();
    pointLists.forEach(function (points) {
      points.forEach(function (point) { steps.add(point.step); });
    });
    var xs = Array.from(steps).sort(function (a, b) { return a - b; });
    var indexOf = new Map();
    xs.forEach(function (step, index) { indexOf.set(step, index); });
    var columns = pointLists.map(function (points) {
      var column = new Array(xs.length).fill(null);
      points.forEach(function (point) {
        column[indexOf.get(point.step)] = finiteOrNull(point.value);
      });
      return column;
    });
    return [xs].concat(columns);
  }

  async function drawLineChart(div) {
    var specs = JSON.parse(div.getAttribute("data-series"));
    if (!Array.isArray(specs)) {
      throw new Error("data-series is not a JSON array");
    }
    var width = chartWidth(div);
    var maxPoints = Math.min(10000, Math.max(10, width));
    var pointLists = await Promise.all(specs.map(function (spec) {
      return fetchSeries(spec, maxPoints);
    }));
    var title = specs.length > 0 ? specs[0].key : "";
    var series = [{ label: "step" }].concat(specs.map(function (spec, index) {
      return {
        label: spec.label || spec.run_id,
        stroke: color(index),
        width: 1.5,
        // Other series' steps are nulls in this one: join across them rather than break.
        spanGaps: true,
        // A metric logged once or a few times is a line of nothing: show its points.
        points: { show: pointLists[index].length <= 20, size: 6, fill: color(index) },
      };
    }));
    draw(div, {
      title: title,
      width: width,
      height: HEIGHT,
      scales: { x: { time: false } },
      axes: [{ label: "step" }, {}],
      series: series,
      legend: { show: true },
    }, alignOnStep(pointLists));
  }

  function drawScatter(div) {
    var raw = JSON.parse(div.getAttribute("data-points"));
    if (!Array.isArray(raw)) {
      throw new Error("data-points is not a JSON array");
    }
    // uPlot's default mode wants ascending x; points without both coordinates are left out.
    var points = raw.map(function (point) {
      return { label: point.label, x: finiteOrNull(point.x), y: finiteOrNull(point.y) };
    }).filter(function (point) {
      return point.x !== null && point.y !== null;
    }).sort(function (a, b) { return a.x - b.x; });
    var xLabel = div.getAttribute("data-x-label") || "x";
    var yLabel = div.getAttribute("data-y-label") || "y";
    draw(div, {
      width: chartWidth(div),
      height: HEIGHT,
      scales: { x: { time: false } },
      axes: [{ label: xLabel }, { label: yLabel }],
      series: [
        {
          label: xLabel,
          // The legend names the hovered point's run next to its x.
          value: function (plot, value, seriesIndex, index) {
            if (index === null || index === undefined || !points[index]) {
              return "--";
            }
            return (points[index].label || "") + " (" + value + ")";
          },
        },
        {
          label: yLabel,
          stroke: color(0),
          fill: color(0),
          paths: function () { return null; },
          points: { show: true, size: 8, stroke: color(0), fill: color(0) },
        },
      ],
      legend: { show: true },
    }, [points.map(function (point) { return point.x; }),
      points.map(function (point) { return point.y; })]);
  }

  function renderAll() {
    document.querySelectorAll("div.chart.scatter[data-points]").forEach(function (div) {
      try {
        drawScatter(div);
      } catch (error) {
        fail(div, error);
      }
    });
    document.querySelectorAll("div.chart[data-series]").forEach(function (div) {
      if (div.classList.contains("scatter")) {
        return;
      }
      drawLineChart(div).catch(function (error) { fail(div, error); });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", renderAll);
  } else {
    renderAll();
  }
})();
