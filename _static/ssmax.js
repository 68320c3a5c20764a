// The book's own reading aids (loaded on every page by Jupyter Book from _static/); no network.
document.addEventListener("DOMContentLoaded", () => {
  const article = document.querySelector("article") || document.body;
  // Figures: a tap or click opens the image itself, full size (a link to the file, so offline too).
  article.querySelectorAll(".cell_output img, figure img").forEach((img) => {
    if (img.closest("a")) return;
    const link = document.createElement("a");
    link.href = img.getAttribute("src");
    link.className = "ssmax-zoom";
    link.title = "Open the figure full size";
    img.parentNode.insertBefore(link, img);
    link.appendChild(img);
  });
  // Display equations: their boxes scroll sideways with a visible cue (ssmax.css).
  article.querySelectorAll("div.math").forEach((div) => div.classList.add("ssmax-scrolls"));
});
