// Placeholder until the replay lands: recovery of the service log into Redis.
console.log(`[recover] ${process.argv[2]}: nothing to replay yet`);
