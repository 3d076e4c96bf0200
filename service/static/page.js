// The web page of memberlens: send the chosen photo to /v1/identify and draw the answer on it.
// Every text from the answer goes in with textContent, never as HTML.
"use strict";

const CANDIDATES_PER_FACE = 3;
const input = document.getElementById("photo-input");
const dropZone = document.getElementById("drop-zone");
const apiKey = document.getElementById("api-key");
const statusLine = document.getElementById("status");
const resultSection = document.getElementById("result");
const photo = document.getElementById("photo");
const boxes = document.getElementById("boxes");
const faceMembers = document.getElementById("face-members");
const imageMembers = document.getElementById("image-members");
const modelLine = document.getElementById("model-line");
let photoUrl = null;

input.addEventListener("change", () => {
  if (input.files.length > 0) {
    identify(input.files[0]);
  }
});
dropZone.addEventListener("dragover", (event) => {
  event.preventDefault();
  dropZone.classList.add("dragging");
});
dropZone.addEventListener("dragleave", () => dropZone.classList.remove("dragging"));
dropZone.addEventListener("drop", (event) => {
  event.preventDefault();
  dropZone.classList.remove("dragging");
  const file = event.dataTransfer.files[0];
  if (file) {
    identify(file);
  }
});

async function identify(file) {
  setStatus("Looking for faces…", false);
  resultSection.hidden = true;
  const body = new FormData();
  body.append("image", file, file.name || "photo");
  const headers = {};
  if (apiKey.value.trim()) {
    headers["X-API-Key"] = apiKey.value.trim();
  }
  let response;
  try {
    response = await fetch(`/v1/identify?top_k=${CANDIDATES_PER_FACE}`, {
      method: "POST", body, headers,
    });
  } catch (error) {
    setStatus("The service could not be reached; check the connection and try again.", true);
    return;
  }
  const answer = await response.json().catch(() => null);
  if (!response.ok) {
    const message = answer && answer.message ? answer.message : `The service answered ${response.status}.`;
    setStatus(message, true);
    return;
  }
  showResult(file, answer);
}

function showResult(file, answer) {
  if (photoUrl) {
    URL.revokeObjectURL(photoUrl);
  }
  photoUrl = URL.createObjectURL(file);
  photo.src = photoUrl;
  boxes.replaceChildren(...answer.faces.map((face) => faceBox(face, answer.image)));
  faceMembers.replaceChildren(...listItems(answer.members.filter((m) => m.source === "face")));
  imageMembers.replaceChildren(...listItems(answer.members.filter((m) => m.source === "image")));
  modelLine.textContent = `Model ${answer.model.bundle}, thresholds ${answer.model.thresholds}.`;
  const named = answer.faces.filter((face) => face.member !== null).length;
  setStatus(`${answer.faces.length} face(s) found, ${named} named.`, false);
  resultSection.hidden = false;
}

function faceBox(face, image) {
  const box = document.createElement("button");
  box.type = "button";
  box.className = face.member === null ? "face-box unknown" : "face-box";
  box.dataset.member = face.member === null ? "" : face.member;
  // Percentages of the upright photo: the boxes follow the image at any displayed size.
  box.style.left = `${(100 * face.box.x_min) / image.width}%`;
  box.style.top = `${(100 * face.box.y_min) / image.height}%`;
  box.style.width = `${(100 * (face.box.x_max - face.box.x_min)) / image.width}%`;
  box.style.height = `${(100 * (face.box.y_max - face.box.y_min)) / image.height}%`;
  const label = document.createElement("span");
  label.className = "name";
  label.textContent = face.member === null ? "unknown" : face.member;
  const candidates = document.createElement("ul");
  candidates.className = "candidates";
  const texts = face.candidates.map((c) => `${c.name} ${(100 * c.score).toFixed(0)}%`);
  for (const text of texts) {
    const item = document.createElement("li");
    item.textContent = text;
    candidates.append(item);
  }
  box.setAttribute("aria-label", `${label.textContent}; candidates: ${texts.join(", ")}`);
  box.append(label, candidates);
  box.addEventListener("click", () => box.classList.toggle("open"));
  return box;
}

function listItems(members) {
  if (members.length === 0) {
    const item = document.createElement("li");
    item.textContent = "none";
    return [item];
  }
  return members.map((member) => {
    const item = document.createElement("li");
    item.textContent = `${member.name} (${(100 * member.score).toFixed(0)}%)`;
    return item;
  });
}

function setStatus(message, isError) {
  statusLine.textContent = message;
  statusLine.classList.toggle("error", isError);
}
