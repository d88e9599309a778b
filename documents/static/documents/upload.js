// Drag-and-drop upload with a progress bar: plain JavaScript, no library, no CDN, no build step.
//
// Where the page offers it (data-multipart-start) and the browser can hash (crypto.subtle), the
// file goes straight to the object store: the page starts a presigned multipart upload, then
// sends the parts a few at a time, each hashed (SHA-256) just before it goes and PUT to S3 with
// that digest, which S3 checks; the whole file's SHA-256 is computed alongside, and the server
// completes and verifies the upload. Otherwise, or if the store cannot be reached from the
// browser, the form is posted to the app as before.
// Progressive enhancement: without JavaScript the form posts as usual.
(function () {
  "use strict";

  var SIGNATURES = [
    ["application/pdf", [0x25, 0x50, 0x44, 0x46, 0x2d]],
    ["image/jpeg", [0xff, 0xd8, 0xff]],
    ["image/png", [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]],
  ];

  function sniff(bytes) {
    for (var i = 0; i < SIGNATURES.length; i++) {
      var magic = SIGNATURES[i][1];
      if (magic.every(function (b, at) { return bytes[at] === b; })) { return SIGNATURES[i][0]; }
    }
    return "application/octet-stream";  // the server names what is accepted
  }

  function hex(buffer) {
    return Array.prototype.map.call(new Uint8Array(buffer), function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  }

  function base64(buffer) {
    return btoa(String.fromCharCode.apply(null, new Uint8Array(buffer)));
  }

  function StoreUnreachable() {}

  function enhance(zone) {
    var form = document.getElementById(zone.dataset.uploadForm);
    var input = form.querySelector("input[type=file]");
    var bar = zone.querySelector("progress");
    var status = zone.querySelector(".upload-status");
    var errors = form.querySelector(".file-errors");
    var csrf = form.querySelector("[name=csrfmiddlewaretoken]").value;

    function show(message, isError) {
      status.textContent = message;
      status.className = "upload-status" + (isError ? " error" : "");
    }

    function progress(fraction, name) {
      bar.value = Math.round(fraction * 100);
      zone.dataset.progress = bar.value;  // observable by tests and assistive scripts
      show(bar.value + "% of " + name);
    }

    function begin() {
      bar.hidden = false;
      bar.value = 0;
      errors.textContent = "";
    }

    // --- Through the app: the form posted with XMLHttpRequest --------------------------------

    function sendToApp(file) {
      var data = new FormData(form);
      data.set("file", file, file.name);
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.setRequestHeader("X-CSRFToken", csrf);
      begin();
      xhr.upload.onprogress = function (event) {
        if (event.lengthComputable) { progress(event.loaded / event.total, file.name); }
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

    // --- Straight to the object store: presigned multipart, parts in parallel ----------------

    function postJson(url, body) {
      return fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: {"Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": csrf},
        body: JSON.stringify(body),
      }).then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (reply) {
          if (!response.ok) {
            var error = new Error(reply.error || "The upload failed (" + response.status + ").");
            error.reply = reply;
            throw error;
          }
          return reply;
        });
      });
    }

    function putPart(url, blob, checksum, onProgress) {
      return new Promise(function (resolve, reject) {
        var xhr = new XMLHttpRequest();
        xhr.open("PUT", url);
        xhr.setRequestHeader("x-amz-checksum-sha256", checksum);
        xhr.upload.onprogress = function (event) { onProgress(event.loaded); };
        xhr.onload = function () {
          var etag = xhr.getResponseHeader("ETag");
          if (xhr.status === 200 && etag) { resolve(etag); return; }
          reject(xhr.status === 200 ? new StoreUnreachable() : new Error("S3 refused a part (" + xhr.status + ")."));
        };
        xhr.onerror = function () { reject(new StoreUnreachable()); };  // CORS or network
        xhr.send(blob);
      });
    }

    function digest(blob) {
      return blob.arrayBuffer().then(function (buffer) { return crypto.subtle.digest("SHA-256", buffer); });
    }

    // One reader hashes the parts in order and asks the app for their URLs (each part's digest
    // signed into its URL), the first part alone so sending starts at once, then a few at a
    // time; `parallel` lanes PUT the parts as their URLs come. Hashing runs ahead of sending.
    function sendParts(file, started, checksums) {
      var parallel = parseInt(zone.dataset.parallelParts, 10) || 4;
      var loaded = {};
      var ready = [];
      var waiting = [];
      var sent = [];
      function offer(item) {
        if (waiting.length) { waiting.shift()(item); } else { ready.push(item); }
      }
      function take() {
        if (ready.length) { return Promise.resolve(ready.shift()); }
        return new Promise(function (resolve) { waiting.push(resolve); });
      }
      function slice(number) {
        var start = (number - 1) * started.part_size;
        return file.slice(start, Math.min(file.size, start + started.part_size));
      }
      function report() {
        var total = 0;
        Object.keys(loaded).forEach(function (n) { total += loaded[n]; });
        progress(Math.min(total / Math.max(file.size, 1), 0.99), file.name);
      }
      function sign(from) {
        if (from > started.part_count) { return Promise.resolve(); }
        var last = Math.min(started.part_count, from === 1 ? 1 : from + parallel - 1);
        var numbers = [];
        for (var n = from; n <= last; n++) { numbers.push(n); }
        return Promise.all(numbers.map(function (number) {
          return digest(slice(number)).then(function (hash) { checksums[number - 1] = base64(hash); });
        })).then(function () {
          return postJson(zone.dataset.multipartParts, {
            ticket: started.ticket,
            part_numbers: numbers,
            part_checksums: numbers.map(function (number) { return checksums[number - 1]; }),
          });
        }).then(function (answer) {
          answer.parts.forEach(offer);
          return sign(last + 1);
        });
      }
      function lane() {
        return take().then(function (part) {
          if (!part) { return; }
          var blob = slice(part.number);
          return putPart(part.url, blob, checksums[part.number - 1], function (bytes) {
            loaded[part.number] = bytes;
            report();
          }).then(function (etag) {
            loaded[part.number] = blob.size;
            sent.push({number: part.number, etag: etag});
            return lane();
          });
        });
      }
      var lanes = [];
      for (var i = 0; i < parallel; i++) { lanes.push(lane()); }
      var signing = sign(1).then(function () {
        for (var j = 0; j < parallel; j++) { offer(null); }  // no more parts: the lanes stop
      }, function (error) {
        for (var j = 0; j < parallel; j++) { offer(null); }
        throw error;
      });
      return Promise.all([signing].concat(lanes)).then(function () {
        return sent.sort(function (a, b) { return a.number - b.number; });
      });
    }

    function sendToStore(file) {
      var ticket = null;
      begin();
      // The file's own SHA-256 (declared at completion) is computed while the parts go out.
      var whole = digest(file).then(hex);
      file.slice(0, 16).arrayBuffer().then(function (head) {
        var declaration = {
          checksummed: true,
          filename: file.name,
          size: file.size,
          content_type: sniff(new Uint8Array(head)),
          part_size: parseInt(zone.dataset.partSize, 10),
        };
        if (zone.dataset.documentId) {
          declaration.document_id = zone.dataset.documentId;
        } else {
          declaration.document_type = form.querySelector("[name=document_type]").value;
          var subject = form.querySelector("[name=subject_ref]");
          if (subject && subject.value) { declaration.subject_ref = subject.value; }
        }
        return postJson(zone.dataset.multipartStart, declaration);
      }).then(function (started) {
        ticket = started.ticket;
        var checksums = [];
        return sendParts(file, started, checksums).then(function (parts) {
          show("Verifying " + file.name + "…");
          return whole.then(function (sha256) {
            return postJson(zone.dataset.multipartComplete, {
              ticket: ticket, sha256: sha256, part_checksums: checksums, parts: parts,
            });
          });
        });
      }).then(function (done) {
        progress(1, file.name);
        show("Stored. Opening…");
        window.location = done.url;
      }).catch(function (error) {
        if (ticket) {  // S3 drops the parts already sent; a refused completion left nothing
          postJson(zone.dataset.multipartAbort, {ticket: ticket}).catch(function () { /* gone */ });
        }
        if (error instanceof StoreUnreachable) {
          sendToApp(file);  // the store is not reachable from this browser: through the app
          return;
        }
        show(error.message, true);
      });
    }

    function send(file) {
      var direct = zone.dataset.multipartStart && window.crypto && crypto.subtle && window.fetch;
      if (direct) { sendToStore(file); } else { sendToApp(file); }
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
