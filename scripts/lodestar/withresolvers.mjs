// Preloaded into Lodestar (NODE_OPTIONS=--import): Node 20 lacks
// Promise.withResolvers (ES2024), which one of Lodestar v1.5.1's transitive
// dependencies calls. This defines it as the specification does; it changes
// nothing on a Node that has it.
if (typeof Promise.withResolvers !== "function") {
	Object.defineProperty(Promise, "withResolvers", {
		configurable: true,
		writable: true,
		value: function withResolvers() {
			let resolve, reject;
			const promise = new this((res, rej) => {
				resolve = res;
				reject = rej;
			});
			return { promise, resolve, reject };
		},
	});
}
