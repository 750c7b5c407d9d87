// Fails while the state file says "down": a stand-in for a staging app that a redeploy fixes.
import fs from "node:fs";
import { describe, expect, test } from "vitest";

function status() {
  return fs.readFileSync(process.env.STATE_FILE, "utf8").trim() === "up" ? 200 : 503;
}

describe("cart (EU)", () => {
  test("adds 2+2 items [fast]", () => {
    expect(status()).toBe(200);
  });
  test("shows the total", () => {
    expect(1 + 1).toBe(2);
  });
  describe("coupons", () => {
    test("applies 10% off", () => {
      expect(status()).toBe(200);
    });
  });
});

test("checkout pays by card?", () => {
  if (status() !== 200) throw new Error("Request failed with status code 503");
});

test("checkout pays by card", () => {
  expect(true).toBe(true);
});
