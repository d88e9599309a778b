// Drag-and-drop upload with a progress bar: plain XMLHttpRequest, no library, no CDN.
// Progressive enhancement: without JavaScript the form posts as usual.
(function () {
  "use strict";

  function enhance(zone) {
    var form = document.getElementById(zone.dataset.uploadForm);
    var input = form.querySelector("input[type=file]");
    var bar = zone.querySelector("progress");
    var status = zone.querySelector(".upload-status");
    var errors = form.querySelector(".file-errors");

    function show(message, isError) {
      status.textContent = message;
      status.className = "upload-status" + (isError ? " error" : "");
    }

    function send(file) {
      var data = new FormData(form);
      data.set("file", file, file.name);
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.setRequestHeader("X-CSRFToken", form.querySelector("[name=csrfmiddlewaretoken]").value);
      bar.hidden = false;
      bar.value = 0;
      errors.textContent = "";
      xhr.upload.onprogress = function (event) {
        if (event.lengthComputable) {
          bar.value = Math.round((event.loaded / event.total) * 100);
          zone.dataset.progress = bar.value;  // observable by tests and assistive scripts
          show(bar.value + "% of " + file.name);
        }
      };
      xhr.onload = function () {
        var reply = {};
        try { reply = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
        if (xhr.status === 201 && reply.url) {
          show("Stored. Opening…");
          window.location = reply.url;
          return;
        }
        var messages = [];
        Object.keys(reply.errors || {}).forEach(function (field) {
          reply.errors[field].forEach(function (error) { messages.push(error.message); });
        });
        show(messages.join(" ") || "The upload failed (" + xhr.status + ").", true);
      };
      xhr.onerror = function () { show("The connection was lost; nothing was saved.", true); };
      xhr.send(data);
    }

    ["dragenter", "dragover"].forEach(function (name) {
      zone.addEventListener(name, function (event) { event.preventDefault(); zone.classList.add("over"); });
    });
    ["dragleave", "drop"].forEach(function (name) {
      zone.addEventListener(name, function () { zone.classList.remove("over"); });
    });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      if (event.dataTransfer.files.length) { send(event.dataTransfer.files[0]); }
    });
    form.addEventListener("submit", function (event) {
      if (input.files.length) { event.preventDefault(); send(input.files[0]); }
    });
  }

  document.querySelectorAll("[data-upload-form]").forEach(enhance);
})();
