# Test-only: a fake `go` and a fake `mvn` (python3 scripts, tools/images/fake-runners/)
# and a Maven-shaped tree, so the real-node tests run operator mode's in-pod listing split
# and Surefire report gathering (core/pod_listing, core/pod_reports) through a real
# kubelet without a Go or Maven toolchain in an image. The pod's own /bin/sh (dash),
# awk (mawk), find, sed and sort are Debian's, as in the golang and maven images.
ARG BASE=localhost/greenloop-base:bookworm
FROM ${BASE}
COPY tools/images/fake-runners/go tools/images/fake-runners/mvn /usr/local/bin/
COPY tools/images/fake-runners/maven-suite/ /maven-suite/
# The suite pod runs as uid 65532 on a writable root filesystem: Surefire's reports go
# to each module's target/. A report of an old build ships in the image, older than
# any run: the fresh-reports rule must never count it (its one test fails).
RUN chmod 755 /usr/local/bin/go /usr/local/bin/mvn \
 && mkdir -p /maven-suite/core/target/surefire-reports \
 && printf '%s\n' '<?xml version="1.0" encoding="UTF-8"?>' \
      '<testsuite name="com.example.core.StaleTest" tests="1" failures="1">' \
      '<testcase name="fromAnOldBuild" classname="com.example.core.StaleTest">' \
      '<failure message="an old build">stale</failure></testcase></testsuite>' \
      > /maven-suite/core/target/surefire-reports/TEST-com.example.core.StaleTest.xml \
 && touch -d '2020-01-01 00:00:00' /maven-suite/core/target/surefire-reports/*.xml \
 && chmod -R a+rwX /maven-suite
USER 65532:65532
WORKDIR /maven-suite
CMD ["mvn", "-B", "test"]
