// Reading training data is backend-neutral and lives in core; tfjs keeps its historical names.
export { readExamples, type ReadExamplesOptions, type TrainingExample as Example } from "@lowrank/core/internal";
