module.exports = { testDir: "playwright", reporter: [["list"], ["junit"]] };
