module.exports = { roots: ["<rootDir>/jest"], testEnvironment: "node" };
