// Draws every learn block's charts from the JSON in #report-data with uPlot (inlined above).
(function () {
  "use strict";
  const blocks = JSON.parse(document.getElementById("report-data").textContent);
  const COLORS = {float32: "#1f77b4", int8: "#d62728", akida: "#2ca02c"};
  const EXTRA = ["#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"];
  const UNITS = {latency: "ms", ram: "bytes", rom: "bytes"};
  const NAMES = {latency: "Latency", ram: "RAM", rom: "ROM"};
  let drawn = 0;

  function color(modelType, index) {
    return COLORS[modelType] || EXTRA[index % EXTRA.length];
  }

  function chart(container, title, block, seriesByType, unit, budget) {
    const series = [{}];
    const data = [block.x];
    Object.keys(seriesByType).forEach(function (modelType, index) {
      series.push({label: modelType, stroke: color(modelType, index), width: 2,
                   points: {show: true, size: 7}, spanGaps: true});
      data.push(seriesByType[modelType]);
    });
    if (budget !== null && budget !== undefined) {
      series.push({label: "budget", stroke: "#444", width: 1.5, dash: [6, 4], points: {show: false}});
      data.push(block.x.map(function () { return budget; }));
    }
    const width = 380;
    new uPlot({
      title: title, width: width, height: 220,
      scales: {x: {time: true}},
      axes: [{}, {label: unit, size: 70}],
      series: series,
    }, data, container);
    drawn += 1;
  }

  function drawTarget(section, block, target) {
    const holder = section.querySelector(".resources");
    holder.textContent = "";
    ["latency", "ram", "rom"].forEach(function (figure) {
      const box = document.createElement("div");
      box.className = "chart";
      holder.appendChild(box);
      const budget = target.budget ? target.budget[figure] : null;
      chart(box, NAMES[figure] + " · " + target.mcu + " · " + target.engine, block,
            target[figure], UNITS[figure], budget);
    });
  }

  blocks.forEach(function (block) {
    const section = document.getElementById("block-" + block.key);
    chart(section.querySelector(".accuracy"), "Accuracy", block, block.accuracy,
          "accuracy", null);
    if (Object.keys(block.flips).length) {
      chart(section.querySelector(".flips"), "Windows that flip vs float32", block,
            block.flips, "windows", null);
    }
    const select = section.querySelector("select");
    if (block.targets.length) {
      block.targets.forEach(function (target, index) {
        const option = document.createElement("option");
        option.value = String(index);
        option.textContent = (target.device_name || target.mcu) + " · " + target.engine +
          (target.is_default ? " (default target)" : "") + (target.budget ? " · budget" : "");
        select.appendChild(option);
      });
      select.addEventListener("change", function () {
        drawTarget(section, block, block.targets[Number(select.value)]);
      });
      drawTarget(section, block, block.targets[0]);
    } else {
      select.disabled = true;
      section.querySelector(".resources").textContent = "Not profiled on any target yet.";
    }
  });
  document.body.setAttribute("data-charts", String(drawn));
})();
