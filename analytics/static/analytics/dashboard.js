// Draw the analytics dashboard from the JSON the server rendered into #analytics-data.
(function () {
  "use strict";
  var source = document.getElementById("analytics-data");
  if (!source || typeof Chart === "undefined") { return; }
  var charts = JSON.parse(source.textContent);
  var palette = ["#1e6f5c", "#334e68", "#b45309", "#7c3aed", "#be123c", "#0e7490",
                 "#4d7c0f", "#a16207", "#475569", "#c2410c", "#15803d", "#1d4ed8"];
  var made = [];
  Chart.defaults.animation = false;  // draw at once: screenshots and tests see the final chart

  function draw(id, config) {
    var canvas = document.getElementById(id);
    if (canvas) { made.push(new Chart(canvas, config)); }
  }
  function colours(n) { return Array.from({length: n}, function (_, i) { return palette[i % palette.length]; }); }
  function bytes(n) {
    var units = ["B", "KB", "MB", "GB", "TB"], i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return n.toFixed(i ? 1 : 0) + " " + units[i];
  }

  var hourly = charts.events_by_hour;
  draw("chart-events-by-hour", {
    type: "bar",
    data: {
      labels: hourly.labels,
      datasets: hourly.datasets.map(function (d, i) {
        return {label: d.label, data: d.data, backgroundColor: palette[i % palette.length], stack: "events"};
      })
    },
    options: {responsive: true, maintainAspectRatio: false,
              scales: {x: {stacked: true, ticks: {maxTicksLimit: 14}}, y: {stacked: true, beginAtZero: true}}}
  });
  draw("chart-top-event-types", {
    type: "bar",
    data: {labels: charts.top_event_types.labels,
           datasets: [{label: "Events", data: charts.top_event_types.data, backgroundColor: colours(charts.top_event_types.data.length)}]},
    options: {indexAxis: "y", responsive: true, maintainAspectRatio: false, plugins: {legend: {display: false}}}
  });
  draw("chart-active-users", {
    type: "line",
    data: {labels: charts.active_users.labels,
           datasets: [{label: "Active users", data: charts.active_users.data, borderColor: palette[1],
                       backgroundColor: "rgba(51,78,104,.15)", fill: true, tension: 0.2}]},
    options: {responsive: true, maintainAspectRatio: false, scales: {y: {beginAtZero: true, ticks: {precision: 0}}}}
  });
  draw("chart-uploads-by-type", {
    type: "doughnut",
    data: {labels: charts.uploads_by_document_type.labels,
           datasets: [{data: charts.uploads_by_document_type.data, backgroundColor: colours(charts.uploads_by_document_type.data.length)}]},
    options: {responsive: true, maintainAspectRatio: false}
  });
  var tiers = charts.storage_by_tier;
  draw("chart-storage-by-tier", {
    type: "bar",
    data: {labels: tiers.labels,
           datasets: [{label: "Bytes stored", data: tiers.bytes, backgroundColor: colours(tiers.bytes.length)}]},
    options: {responsive: true, maintainAspectRatio: false, plugins: {legend: {display: false},
              tooltip: {callbacks: {label: function (c) { return bytes(c.raw) + " in " + tiers.documents[c.dataIndex] + " documents"; }}}},
              scales: {y: {beginAtZero: true, ticks: {callback: function (v) { return bytes(v); }}}}}
  });
  if (charts.events_by_tenant) {
    draw("chart-events-by-tenant", {
      type: "bar",
      data: {labels: charts.events_by_tenant.labels,
             datasets: [{label: "Events", data: charts.events_by_tenant.data, backgroundColor: colours(charts.events_by_tenant.data.length)}]},
      options: {responsive: true, maintainAspectRatio: false, plugins: {legend: {display: false}}}
    });
  }
  window.metisCharts = made;
})();
