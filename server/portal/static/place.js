// Signet portal: placing signature boxes and form fields on a draft's pages (/s/env/<id>/place) -- the portal's
// only script, served by the portal itself (/s/place.js) to that page only (its Content-Security-Policy:
// script-src 'self').
//
// Progressive enhancement: the form's numeric fields (page, x1, y1, x2, y2 in PDF points from the bottom left of
// the page) are what is saved and work without this script.  The script draws one box per signer and one per form
// field (labelled with its name and kind) on the rendered pages, lets the sender drag it (to another page too) and
// resize it by its corner with a mouse, or move it with the arrow keys, resize it with Shift and the arrow keys,
// and change pages with Page Down / Page Up; every change is written into the numeric fields, and typing in them
// moves the box.  Each page's size in points comes from its data- attributes (the server reads the PDF's media
// box); screen pixels become points by the image's scale.
(function () {
  "use strict";
  var form = document.getElementById("placement");
  var status = document.getElementById("place-status");
  var sheets = Array.prototype.slice.call(document.querySelectorAll(".sheet")).filter(function (s) {
    return Number(s.dataset.rotate || 0) === 0; // a rotated page keeps its numbers: no box is drawn on it
  });
  if (!form || !sheets.length) {
    return;
  }
  var STEP = 5; // points per key press
  var MIN_W = Number(form.dataset.minWidth) || 36;
  var MIN_H = Number(form.dataset.minHeight) || 18;
  var KEYS = ["page", "x1", "y1", "x2", "y2"];
  var boxes = [];
  var drag = null;

  function sheetOf(page) {
    for (var i = 0; i < sheets.length; i++) {
      if (Number(sheets[i].dataset.page) === page) {
        return sheets[i];
      }
    }
    return null;
  }

  // the page's geometry: its size in points, where its image sits in the sheet, pixels per point
  function geometry(sheet) {
    var img = sheet.querySelector("img");
    var d = sheet.dataset;
    var w = Number(d.w);
    return {
      img: img, x0: Number(d.x0), y0: Number(d.y0), w: w, h: Number(d.h),
      left: img.offsetLeft + img.clientLeft, top: img.offsetTop + img.clientTop,
      scale: img.clientWidth / w
    };
  }

  function read(b) {
    var v = {};
    for (var i = 0; i < KEYS.length; i++) {
      var n = parseFloat(b.inputs[KEYS[i]].value);
      if (!isFinite(n)) {
        return null;
      }
      v[KEYS[i]] = n;
    }
    v.page = Math.round(v.page);
    return v;
  }

  function round(n) {
    return Math.round(n * 100) / 100;
  }

  function write(b, v) {
    for (var i = 0; i < KEYS.length; i++) {
      b.inputs[KEYS[i]].value = String(round(v[KEYS[i]]));
    }
  }

  // keep a box inside its page and at least the minimum size, its size kept when it is moved
  function clamp(v, g, keepSize) {
    var w = Math.min(Math.max(v.x2 - v.x1, MIN_W), g.w);
    var h = Math.min(Math.max(v.y2 - v.y1, MIN_H), g.h);
    if (keepSize) {
      v.x1 = Math.min(Math.max(v.x1, g.x0), g.x0 + g.w - w);
      v.y1 = Math.min(Math.max(v.y1, g.y0), g.y0 + g.h - h);
      v.x2 = v.x1 + w;
      v.y2 = v.y1 + h;
    } else {
      v.x1 = Math.max(v.x1, g.x0);
      v.y2 = Math.min(v.y2, g.y0 + g.h);
      v.x2 = Math.min(Math.max(v.x2, v.x1 + MIN_W), g.x0 + g.w);
      v.y1 = Math.max(Math.min(v.y1, v.y2 - MIN_H), g.y0);
    }
    return v;
  }

  function draw(b) {
    var v = read(b);
    var sheet = v ? sheetOf(v.page) : null;
    if (!sheet) {
      b.el.hidden = true; // numbers that name no page shown here: the form says what is wrong when saved
      return;
    }
    b.el.hidden = false;
    if (b.el.parentNode !== sheet) {
      sheet.appendChild(b.el);
    }
    var g = geometry(sheet);
    b.el.style.left = g.left + (v.x1 - g.x0) * g.scale + "px";
    b.el.style.top = g.top + (g.y0 + g.h - v.y2) * g.scale + "px";
    b.el.style.width = Math.max(v.x2 - v.x1, 1) * g.scale + "px";
    b.el.style.height = Math.max(v.y2 - v.y1, 1) * g.scale + "px";
  }

  function announce(b) {
    var v = read(b);
    if (v) {
      status.textContent = b.name + ": page " + v.page + ", x " + round(v.x1) + " to " + round(v.x2) + ", y " +
        round(v.y1) + " to " + round(v.y2) + " points";
    }
  }

  function set(b, v) {
    write(b, v);
    draw(b);
  }

  // the page under a point of the screen, and that point in the page's points
  function pointOn(x, y, only) {
    var list = only ? [only] : sheets;
    for (var i = 0; i < list.length; i++) {
      var g = geometry(list[i]);
      var r = g.img.getBoundingClientRect();
      var px = x - r.left - g.img.clientLeft;
      var py = y - r.top - g.img.clientTop;
      if (only || (px >= 0 && py >= 0 && px <= g.img.clientWidth && py <= g.img.clientHeight)) {
        return { sheet: list[i], g: g, x: g.x0 + px / g.scale, y: g.y0 + g.h - py / g.scale };
      }
    }
    return null;
  }

  function onPointerDown(b, e) {
    if (e.button !== 0) {
      return;
    }
    e.preventDefault();
    b.el.focus();
    var r = b.el.getBoundingClientRect();
    // followed on the document, not captured by the box: the box moves to another page's element on the way
    drag = { b: b, resize: e.target.classList.contains("grip"), dx: e.clientX - r.left, dy: e.clientY - r.top };
  }

  function onPointerMove(e) {
    if (!drag) {
      return;
    }
    var b = drag.b;
    var v = read(b);
    if (!v) {
      return;
    }
    if (drag.resize) { // the bottom-right corner follows the pointer, on the box's own page
      var at = pointOn(e.clientX, e.clientY, sheetOf(v.page));
      if (at) {
        v.x2 = at.x;
        v.y1 = at.y;
        set(b, clamp(v, at.g, false));
      }
      return;
    }
    var to = pointOn(e.clientX, e.clientY, null); // the page under the pointer (the box may go to another one)
    if (!to) {
      return;
    }
    var corner = pointOn(e.clientX - drag.dx, e.clientY - drag.dy, to.sheet); // the box's top-left corner
    var w = v.x2 - v.x1;
    var h = v.y2 - v.y1;
    v.page = Number(to.sheet.dataset.page);
    v.x1 = corner.x;
    v.y2 = corner.y;
    v.x2 = v.x1 + w;
    v.y1 = v.y2 - h;
    set(b, clamp(v, to.g, true));
  }

  function onPointerUp() {
    if (drag) {
      var b = drag.b;
      drag = null;
      b.el.focus(); // moving it to another page's element took the focus away
      announce(b);
    }
  }

  function onKey(b, e) {
    var v = read(b);
    if (!v || e.altKey || e.ctrlKey || e.metaKey) {
      return;
    }
    var dx = { ArrowLeft: -STEP, ArrowRight: STEP }[e.key] || 0;
    var dy = { ArrowDown: -STEP, ArrowUp: STEP }[e.key] || 0;
    var dp = { PageDown: 1, PageUp: -1 }[e.key] || 0;
    if (!dx && !dy && !dp) {
      return;
    }
    e.preventDefault();
    var sheet = sheetOf(v.page + dp);
    if (!sheet) {
      return;
    }
    v.page += dp;
    if (e.shiftKey && !dp) { // the bottom-right corner follows the arrow: Shift+Down is taller, Shift+Up shorter
      v.x2 += dx;
      v.y1 += dy;
      set(b, clamp(v, geometry(sheet), false));
    } else {
      v.x1 += dx;
      v.x2 += dx;
      v.y1 += dy;
      v.y2 += dy;
      set(b, clamp(v, geometry(sheet), true));
    }
    if (dp) {
      b.el.focus();
    }
    announce(b);
  }

  // one box per fieldset with its numbers: each signer's signature box, then each form field (labelled with its
  // name and kind, drawn differently), moved and resized the same way
  Array.prototype.forEach.call(form.querySelectorAll("fieldset[data-box]"), function (fs) {
    var b = { name: fs.dataset.name || fs.dataset.box, inputs: {}, el: document.createElement("button") };
    for (var i = 0; i < KEYS.length; i++) {
      b.inputs[KEYS[i]] = document.getElementById(fs.dataset.box + "_" + KEYS[i]);
    }
    b.el.type = "button";
    b.el.className = fs.dataset.formField ? "formbox" : "sigbox";
    b.el.setAttribute("aria-describedby", "place-help");
    var label = document.createElement("span");
    label.className = "name";
    label.textContent = fs.dataset.label || b.name;
    var grip = document.createElement("span");
    grip.className = "grip";
    grip.setAttribute("aria-hidden", "true");
    b.el.appendChild(label);
    b.el.appendChild(grip);
    b.el.addEventListener("pointerdown", function (e) { onPointerDown(b, e); });
    b.el.addEventListener("keydown", function (e) { onKey(b, e); });
    b.el.addEventListener("focus", function () { announce(b); });
    KEYS.forEach(function (k) {
      b.inputs[k].addEventListener("input", function () { draw(b); });
    });
    boxes.push(b);
  });

  function drawAll() {
    boxes.forEach(draw);
  }
  sheets.forEach(function (s) {
    s.querySelector("img").addEventListener("load", drawAll);
  });
  window.addEventListener("resize", drawAll);
  document.addEventListener("pointermove", onPointerMove);
  document.addEventListener("pointerup", onPointerUp);
  document.addEventListener("pointercancel", onPointerUp);
  drawAll();
})();
