// Fails while the state file says "down": a stand-in for a staging app that a redeploy fixes.
const fs = require("fs");

function up() {
  return fs.readFileSync(process.env.STATE_FILE, "utf8").trim() === "up";
}

function status() {
  return up() ? 200 : 503;
}

describe("cart (EU)", () => {
  test("adds 2+2 items [fast]", () => {
    expect(status()).toBe(200);
  });
  test("shows the total", () => {
    expect(1 + 1).toBe(2);
  });
});

describe("checkout", () => {
  test("pays by card?", () => {
    if (!up()) throw new Error("Request failed with status code 503");
  });
  test("pays by card", () => {
    expect(true).toBe(true);
  });
});
