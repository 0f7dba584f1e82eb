// BigDL 0.3.0 fixture program (Scala 2.11, BigDL in local mode, no Spark), driven by scripts/make_bigdl_fixtures.py.
//   java -cp classes:CP Make ROOT WORK NET[,NET...]
// ROOT is fixtures/bigdl (files go to ROOT/v0.3/); WORK holds inputs/NET.t (int32 LE ndim, dims, float32 LE data)
// and params/NET.f32 (BigDL 2.4's flat parameters in parameters() order: the same numbers in both generations).
// The same nets as nets24.py; where 0.3.0 lacks a module the closest 0.3.0 form is used (ReLU6 = HardTanh(0, 6),
// no UpSampling2D, no NHWC BatchNorm).  Every file is reloaded with BigDL 0.3.0 and run on the input; the output
// goes to FILE.out.t and one line per file to WORK/manifest-0.3.tsv: file, format, kind, modules, diff | error.
import java.io._
import java.nio.{ByteBuffer, ByteOrder}
import java.nio.file.{Files, Paths}

import com.intel.analytics.bigdl.nn._
import com.intel.analytics.bigdl.nn.abstractnn.{AbstractModule, Activity, DataFormat}
import com.intel.analytics.bigdl.tensor.{Storage, Tensor}
import com.intel.analytics.bigdl.utils.{Engine, RandomGenerator}

object Make {
  type M = AbstractModule[Activity, Activity, Float]

  def readT(path: String): Tensor[Float] = {
    val b = ByteBuffer.wrap(Files.readAllBytes(Paths.get(path))).order(ByteOrder.LITTLE_ENDIAN)
    val nd = b.getInt(); val dims = Array.fill(nd)(b.getInt())
    val data = Array.fill(dims.product)(b.getFloat())
    Tensor(Storage(data)).resize(dims)
  }

  def writeT(path: String, t: Tensor[Float]): Unit = {
    val c = t.contiguous()
    val b = ByteBuffer.allocate(4 * (1 + c.dim() + c.nElement())).order(ByteOrder.LITTLE_ENDIAN)
    b.putInt(c.dim()); c.size().foreach(b.putInt(_))
    val a = c.storage().array(); val o = c.storageOffset() - 1
    for (i <- 0 until c.nElement()) b.putFloat(a(o + i))
    Files.write(Paths.get(path), b.array())
  }

  def seq(ms: AbstractModule[_ <: Activity, _ <: Activity, Float]*): Sequential[Float] = {
    val s = Sequential[Float](); ms.foreach(m => s.add(m)); s
  }
  def conv(i: Int, o: Int, k: Int, s: Int = 1, p: Int = 0, g: Int = 1) =
    SpatialConvolution[Float](i, o, k, k, s, s, p, p, nGroup = g)

  def lenet(): M = seq(conv(1, 6, 5, p = 2), ReLU[Float](), SpatialMaxPooling[Float](2, 2, 2, 2),
    conv(6, 16, 5), ReLU[Float](), SpatialMaxPooling[Float](2, 2, 2, 2), View[Float](400).setNumInputDims(3),
    Linear[Float](400, 120), ReLU[Float](), Linear[Float](120, 84), ReLU[Float](), Linear[Float](84, 10),
    LogSoftMax[Float]()).asInstanceOf[M]

  def vggBn(): M = {
    def block(i: Int, o: Int) = Seq(conv(i, o, 3, p = 1), SpatialBatchNormalization[Float](o), ReLU[Float]())
    seq(block(1, 8) ++ block(8, 8) ++ Seq(SpatialMaxPooling[Float](2, 2, 2, 2)) ++ block(8, 16) ++ block(16, 16) ++
      Seq(SpatialMaxPooling[Float](3, 3, 2, 2).ceil(), View[Float](16 * 7 * 7).setNumInputDims(3),
        Linear[Float](16 * 7 * 7, 32), BatchNormalization[Float](32), ReLU[Float](), Dropout[Float](0.3),
        Linear[Float](32, 10), SoftMax[Float]()): _*).asInstanceOf[M]
  }

  def inception(): M = {
    val b = Concat[Float](2)
    b.add(seq(conv(8, 4, 1), ReLU[Float]()))
    b.add(seq(conv(8, 4, 1), ReLU[Float](), conv(4, 6, 3, p = 1), ReLU[Float]()))
    b.add(seq(conv(8, 2, 1), Threshold[Float](0.05, 0.0), conv(2, 4, 5, p = 2), ReLU[Float]()))
    b.add(seq(SpatialMaxPooling[Float](3, 3, 1, 1, 1, 1), conv(8, 4, 1), ReLU[Float]()))
    seq(conv(1, 8, 3, s = 2, p = 1), ReLU[Float](), SpatialCrossMapLRN[Float](5, 1e-4, 0.75, 1.0), b,
      SpatialMaxPooling[Float](2, 2, 2, 2), View[Float](18 * 7 * 7).setNumInputDims(3), Dropout[Float](0.5),
      Linear[Float](18 * 7 * 7, 10), LogSoftMax[Float]()).asInstanceOf[M]
  }

  def resnet(): M = {
    def unit(c: Int) = {
      val body = seq(conv(c, c, 3, p = 1), SpatialBatchNormalization[Float](c), ReLU[Float](),
        conv(c, c, 3, p = 1), SpatialBatchNormalization[Float](c))
      Seq(ConcatTable[Activity, Float]().add(body).add(Identity[Float]()), CAddTable[Float](), ReLU[Float]())
    }
    seq(Seq(conv(1, 8, 3, p = 1), SpatialBatchNormalization[Float](8), ReLU[Float]()) ++ unit(8) ++
      Seq(SpatialMaxPooling[Float](2, 2, 2, 2)) ++ unit(8) ++
      Seq(SpatialAveragePooling[Float](14, 14, globalPooling = true), View[Float](8).setNumInputDims(3),
        Linear[Float](8, 10), SoftMax[Float]()): _*).asInstanceOf[M]
  }

  def groupedDilated(): M = seq(conv(1, 8, 3, p = 1), HardTanh[Float](0, 6), conv(8, 16, 3, p = 1, g = 4),
    ReLU[Float](), SpatialDilatedConvolution[Float](16, 16, 3, 3, 1, 1, 2, 2, 2, 2), Tanh[Float](),
    SpatialShareConvolution[Float](16, 8, 3, 3, 2, 2, 1, 1, nGroup = 2), Sigmoid[Float](),
    SpatialAveragePooling[Float](3, 3, 2, 2, 1, 1, ceilMode = true, countIncludePad = false),
    View[Float](8 * 8 * 8).setNumInputDims(3), Linear[Float](8 * 8 * 8, 10), LogSoftMax[Float]()).asInstanceOf[M]

  def activations(): M = seq(Linear[Float](32, 24), LeakyReLU[Float](0.1), Linear[Float](24, 24),
    PReLU[Float](24), Threshold[Float](0.2, -0.5), Scale[Float](Array(24)), CMul[Float](Array(24)),
    CAdd[Float](Array(24)), Tanh[Float](), Linear[Float](24, 16), HardTanh[Float](0, 6), Normalize[Float](2.0),
    Linear[Float](16, 8), Sigmoid[Float](), Linear[Float](8, 5), SoftMax[Float]()).asInstanceOf[M]

  def upsample(): M = seq(SpatialZeroPadding[Float](1, 2, 0, 1), conv(3, 8, 3), ReLU[Float](),
    SpatialMaxPooling[Float](3, 3, 2, 2).ceil(), SpatialCrossMapLRN[Float](3, 1e-3, 0.75, 2.0),
    SpatialFullConvolution[Float](8, 6, 4, 4, 2, 2, 1, 1), PReLU[Float](6), conv(6, 4, 3, s = 1, p = 1),
    ConcatTable[Activity, Float]().add(conv(4, 4, 1)).add(seq(conv(4, 2, 3, p = 1), Sigmoid[Float]())),
    JoinTable[Float](1, 3), Transpose[Float](Array((2, 3))), Reshape[Float](Array(10, 84), Some(true)),
    Unsqueeze[Float](2), Squeeze[Float](2)).asInstanceOf[M]

  def tables(): M = seq(conv(1, 8, 3, p = 1), ReLU[Float](),
    ConcatTable[Activity, Float]().add(conv(8, 4, 1)).add(conv(8, 4, 3, p = 1)),
    ParallelTable[Float]().add(ReLU[Float]()).add(Tanh[Float]()), CMulTable[Float](),
    SpatialMaxPooling[Float](2, 2, 2, 2), View[Float](4 * 14 * 14).setNumInputDims(3), Linear[Float](4 * 14 * 14, 10),
    LogSoftMax[Float]()).asInstanceOf[M]

  def conv3x3(): M = seq(SpatialConvolution[Float](3, 16, 3, 3, 1, 1, 1, 1)).asInstanceOf[M]
  def conv1x1(): M = seq(SpatialConvolution[Float](16, 8, 1, 1, 2, 2)).asInstanceOf[M]

  def graph(): M = {
    val x = Input[Float]()
    val r1 = ReLU[Float]().inputs(SpatialBatchNormalization[Float](8).inputs(
      SpatialConvolution[Float](1, 8, 3, 3, 1, 1, 1, 1).inputs(x)))
    val a = SpatialConvolution[Float](8, 8, 3, 3, 1, 1, 1, 1).inputs(r1)
    val b = SpatialConvolution[Float](8, 8, 1, 1).inputs(r1)
    val s = CAddTable[Float]().inputs(a, b)
    val m = CMulTable[Float]().inputs(s, Sigmoid[Float]().inputs(b))
    val j = JoinTable[Float](2, 0).inputs(m, r1)
    val p = SpatialMaxPooling[Float](2, 2, 2, 2).inputs(ReLU[Float]().inputs(j))
    val v = View[Float](16 * 14 * 14).setNumInputDims(3).inputs(p)
    val out = SoftMax[Float]().inputs(Linear[Float](16 * 14 * 14, 10).inputs(v))
    Graph[Float](x, out).asInstanceOf[M]
  }

  def nhwc(): M = seq(
    SpatialConvolution[Float](3, 8, 3, 3, 1, 1, 1, 1, format = DataFormat.NHWC), ReLU[Float](),
    SpatialMaxPooling[Float](2, 2, 2, 2, format = DataFormat.NHWC),
    SpatialConvolution[Float](8, 8, 3, 3, 1, 1, 1, 1, format = DataFormat.NHWC), ReLU[Float](),
    SpatialAveragePooling[Float](2, 2, 2, 2, format = DataFormat.NHWC), View[Float](4 * 4 * 8).setNumInputDims(3),
    Linear[Float](4 * 4 * 8, 6), LogSoftMax[Float]()).asInstanceOf[M]

  val nets: Map[String, (() => M, Boolean)] = Map(
    "lenet" -> (lenet _, false), "vgg_bn" -> (vggBn _, true), "inception" -> (inception _, false),
    "resnet" -> (resnet _, true), "grouped_dilated" -> (groupedDilated _, false),
    "activations" -> (activations _, false), "upsample" -> (upsample _, false), "graph" -> (graph _, true), "tables" -> (tables _, false), "conv3x3" -> (conv3x3 _, false), "conv1x1" -> (conv1x1 _, false),
    "nhwc" -> (nhwc _, false))

  def classes(m: AbstractModule[_, _, Float], acc: scala.collection.mutable.ArrayBuffer[String]): Unit = {
    val n = m.getClass.getName.replace("com.intel.analytics.bigdl.nn.", "")
    if (!acc.contains(n)) acc += n
    m match {
      case c: Container[_, _, Float] @unchecked => c.modules.foreach(s => classes(s, acc))
      case _ =>
    }
  }

  def out(m: M, x: Tensor[Float]): Tensor[Float] = m.forward(x).toTensor[Float].clone()

  def main(args: Array[String]): Unit = {
    System.setProperty("bigdl.localMode", "true")
    System.setProperty("bigdl.coreNumber", "2")
    Engine.init
    val Array(root, work, names) = args
    new File(s"$root/v0.3").mkdirs()
    val tsv = new PrintWriter(new FileWriter(s"$work/manifest-0.3.tsv"))
    var failed = List[String]()
    for (name <- names.split(",")) {
      println(s"[0.3] $name")
      try {
        RandomGenerator.RNG.setSeed(1234)
        val (build, warm) = nets(name)
        val model = build()
        val x = readT(s"$work/inputs/$name.t")
        val pf = new File(s"$work/params/$name.f32")
        val flat = if (pf.exists) readT0(pf) else Array[Float]()
        val ps = model.parameters()._1
        val weights = if (ps.map(_.nElement()).sum == flat.length) {
          var o = 0
          for (p <- ps) { p.copy(Tensor(Storage(flat.slice(o, o + p.nElement()))).resizeAs(p)); o += p.nElement() }
          "BigDL 2.4's parameters"
        } else s"own seeded init (2.4 has ${flat.length} parameters, 0.3.0 ${ps.map(_.nElement()).sum})"
        if (warm) { model.training(); for (_ <- 1 to 3) model.forward(x) }
        model.evaluate()
        // saveTorch writes a tensor's whole storage: save the .t7 before compacting the weights
        // (no .t7 for a Graph: saveTorch rejects it, and the failed attempt leaves 0.3.0's Graph unable to run)
        if (!model.isInstanceOf[Graph[Float]]) save(name, model, x, root, "", "fp32", weights, tsv, Seq("t7" -> s"v0.3/$name.t7"))
        model.getParameters() // compacts all weights into one storage, as BigDL's optimizers do
        save(name, model, x, root, "", "fp32", weights, tsv, Seq("protobuf" -> s"v0.3/$name.bigdl"))
        val q = model.quantize()
        q.evaluate()
        val qok = try { out(q, x); "" } catch { case e: Throwable => e.toString.replace('\n', ' ').take(200) }
        if (qok.isEmpty) save(name, q, x, root, "_q", "quantized", weights, tsv, Seq("protobuf" -> s"v0.3/${name}_q.bigdl"))
        else {
          println(s"  ${name}_q: quantize() gives a model that does not run: $qok")
          tsv.println(Seq(s"v0.3/${name}_q.bigdl", "protobuf", "quantized", "", "", weights, "",
            "BigDL 0.3.0's quantize() gives a model that does not run: " + qok).mkString("\t"))
        }
      } catch {
        case e: Throwable => e.printStackTrace(); failed ::= name
      }
      tsv.flush()
    }
    tsv.close()
    if (failed.nonEmpty) { println(s"FAILED nets: $failed"); sys.exit(1) }
    sys.exit(0)
  }

  def readT0(f: File): Array[Float] = {
    val b = ByteBuffer.wrap(Files.readAllBytes(f.toPath)).order(ByteOrder.LITTLE_ENDIAN)
    Array.fill(b.remaining() / 4)(b.getFloat())
  }

  def save(name: String, m: M, x: Tensor[Float], root: String, qual: String, kind: String, weights: String,
           tsv: PrintWriter, forms: Seq[(String, String)]): Unit = {
    val mem = out(m, x)
    for ((fmt, rel) <- forms) {
      val path = s"$root/$rel"
      try {
        if (fmt == "t7") m.saveTorch(path, true) else m.saveModule(path, true)
        new File(new File(path).getParent, "." + new File(path).getName + ".crc").delete() // Hadoop's checksum
        var note = ""
        val (y, shown) = try {
          val loaded = if (fmt == "t7") Module.loadTorch[Float](path) else Module.loadModule[Float](path)
          loaded.evaluate()
          (out(loaded, x), loaded)
        } catch {
          case e: Throwable if m.isInstanceOf[Graph[Float]] =>
            // BigDL 0.3.0 cannot run a Graph it reloaded (even Input -> conv): the reference is the saved model
            note = "BigDL 0.3.0 fails to run this file after reloading it (" + e.toString.replace('\n', ' ')
              .replace('\t', ' ').take(160) + "); output is the saved in-memory model's"
            (mem, m)
        }
        writeT(path + ".out.t", y)
        val acc = scala.collection.mutable.ArrayBuffer[String]()
        classes(shown, acc)
        val diff = (y - mem).abs().max()
        tsv.println(Seq(rel, fmt, kind, acc.mkString(" "), diff.toString, weights, note).mkString("\t"))
        println(s"  $rel: $fmt $kind out ${y.size().mkString("x")} $note")
      } catch {
        case e: Throwable =>
          new File(path).delete()
          val why = (e.toString + Option(e.getCause).map(c => " / " + c.toString).getOrElse("")).replace('\t', ' ')
            .replace('\n', ' ').take(300)
          println(s"  $name$qual $fmt: not written: $why")
          tsv.println(Seq(rel, fmt, kind, "", "", weights, "", why).mkString("\t"))
      }
    }
  }
}
