// Draw the Monitoring page's charts from the JSON the server rendered into #monitoring-data.
(function () {
  "use strict";
  var source = document.getElementById("monitoring-data");
  if (!source || typeof Chart === "undefined") { return; }
  var data = JSON.parse(source.textContent);
  var palette = ["#1e6f5c", "#334e68", "#b45309", "#7c3aed", "#be123c", "#0e7490",
                 "#4d7c0f", "#a16207", "#475569", "#c2410c", "#15803d", "#1d4ed8"];
  Chart.defaults.animation = false;  // draw at once: screenshots and tests see the final chart

  function bytes(n) {
    var units = ["B", "KB", "MB", "GB", "TB"], i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return n.toFixed(i ? 1 : 0) + " " + units[i];
  }
  function duration(s) {
    if (s < 1) { return (s * 1000).toFixed(0) + " ms"; }
    if (s < 120) { return s.toFixed(0) + " s"; }
    if (s < 7200) { return (s / 60).toFixed(0) + " min"; }
    return (s / 3600).toFixed(1) + " h";
  }
  var formats = {
    bytes: bytes,
    seconds: duration,
    usd: function (v) { return "$" + v.toFixed(2); },
    rate: function (v) { return v.toFixed(2) + "/min"; },
    count: function (v) { return String(Math.round(v * 100) / 100); }
  };

  function axis(unit, position, stacked) {
    var format = formats[unit] || formats.count;
    return {position: position, stacked: stacked, beginAtZero: true,
            ticks: {callback: function (v) { return format(v); }}};
  }

  var made = data.charts.map(function (chart) {
    var canvas = document.getElementById("chart-" + chart.id);
    if (!canvas) { return null; }
    var stacked = !!chart.stacked;
    var scales = {x: {stacked: stacked, ticks: {maxTicksLimit: 12}}, y: axis(chart.unit, "left", stacked)};
    if (chart.unit2) { scales.y2 = axis(chart.unit2, "right", false); scales.y2.grid = {drawOnChartArea: false}; }
    var datasets = chart.datasets.map(function (d, i) {
      var colour = palette[i % palette.length];
      return {label: d.label, data: d.data, yAxisID: d.axis || "y", borderColor: colour,
              backgroundColor: colour, fill: stacked && !chart.bar,
              borderDash: d.dashed ? [6, 4] : [], pointRadius: 0, borderWidth: 1.5, spanGaps: false};
    });
    return new Chart(canvas, {
      type: chart.bar ? "bar" : "line",
      data: {labels: data.labels, datasets: datasets},
      options: {responsive: true, maintainAspectRatio: false, interaction: {mode: "index", intersect: false},
                plugins: {tooltip: {callbacks: {label: function (c) {
                  var unit = c.dataset.yAxisID === "y2" ? chart.unit2 : chart.unit;
                  return c.dataset.label + ": " + (formats[unit] || formats.count)(c.raw);
                }}}},
                scales: scales}
    });
  });
  window.metisCharts = made.filter(function (c) { return c !== null; });
})();
